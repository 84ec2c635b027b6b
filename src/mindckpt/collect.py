"""``save_obj`` -> ordered records ``(name, ndarray | torch.Tensor | str)``, MindSpore's order.

Arrays are views of the caller's data (Parameters, numpy arrays) and torch tensors are kept as
they are (detached): nothing is copied here.  A name given twice keeps its first position and its last value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import tensor as T
from .adapters.torch import is_torch_module
from .formats.records import Record
from .state import flatten_state, is_nested
from .nn import Cell
from .tensor import Parameter, Tensor, is_torch_tensor

__all__ = ["collect", "scalar_array", "is_torch_module", "validate_append_dict"]

_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1


def scalar_array(value: bool | int | float | np.bool_, name: str) -> np.ndarray:
    """A Python scalar as MindSpore stores it: Bool, Int64 (UInt64 past 2**63), Float32 (Float64
    for ``numpy.float64``)."""
    if isinstance(value, (bool, np.bool_)):
        return np.array(bool(value))
    if isinstance(value, int):
        if value > _UINT64_MAX or value < _INT64_MIN:
            raise ValueError(
                f"For 'save_checkpoint', the integer value of '{name}' ({value}) does not fit in "
                "int64 or uint64; store it as a str or split it."
            )
        return np.array(value, dtype=np.uint64 if value > (1 << 63) - 1 else np.int64)
    if isinstance(value, np.float64):
        return np.array(value, dtype=np.float64)
    return np.array(value, dtype=np.float32)


def _value(name: str, value: Any, out: dict[str, Any], dtypes: dict[str, T.Type]) -> None:
    """Store one value under ``name`` (position of the first, value of the last)."""
    dtypes.pop(name, None)
    if isinstance(value, str):
        out[name] = value
    elif isinstance(value, Tensor):
        out[name] = value.asnumpy()
        if value.dtype is T.qint4x2:
            dtypes[name] = T.qint4x2
    elif isinstance(value, np.ndarray):
        out[name] = value
    elif is_torch_tensor(value):
        # kept as a tensor: the writer converts one at a time (a CUDA tensor is copied to the
        # host only while it is written) and the async snapshot copies it once
        out[name] = value.detach()
    elif isinstance(value, (bool, int, float, np.bool_)):
        out[name] = scalar_array(value, name)
    else:
        raise TypeError(
            f"For save_checkpoint, the value of '{name}' must be a Parameter, Tensor, numpy "
            f"array, torch tensor, str, int, float or bool, but got {type(value)}."
        )


def validate_append_dict(append_dict: Any) -> None:
    if append_dict is None:
        return
    if not isinstance(append_dict, dict):
        raise TypeError(
            "For 'save_checkpoint', the argument 'append_dict' must be dict, but got "
            f"{type(append_dict)}."
        )
    for key, value in append_dict.items():
        if not isinstance(key, str) or not isinstance(value, (int, float, bool, str, Tensor)):
            raise TypeError(
                "For 'save_checkpoint', the type of dict 'append_info' must be key: string, "
                "value: int, float, bool or Generator, but got key: "
                f"{type(key)}, value: {type(value)}"
            )


def collect(
    save_obj: Any,
    choice_func: Callable[[str], Any] | None = None,
    append_dict: dict[str, Any] | None = None,
    fmt: str = "ckpt",
) -> list[Record]:
    """Turn ``save_obj`` (+ ``append_dict``) into ordered :class:`Record` s.

    A dict value that is itself a dict, list or tuple (an optimizer's ``state_dict()``, RNG
    states) is flattened by :func:`mindckpt.state.flatten_state` under its key (``choice_func``
    sees the key); ``mindckpt.state.unflatten_state(load_checkpoint(path))`` rebuilds it.
    """
    out: dict[str, Any] = {}
    dtypes: dict[str, T.Type] = {}

    def keep(name: str) -> bool:
        return choice_func is None or bool(choice_func(name))

    if isinstance(save_obj, Cell):
        for _path, param in save_obj.parameters_and_names():
            if keep(param.name):
                _value(param.name, param, out, dtypes)
    elif is_torch_module(save_obj):
        for name, t in save_obj.state_dict().items():
            if keep(name):
                _value(name, t, out, dtypes)
    elif isinstance(save_obj, list):
        if save_obj and isinstance(save_obj[0], dict):
            for item in save_obj:
                if not isinstance(item, dict) or "name" not in item or "data" not in item:
                    raise TypeError(
                        "For save_checkpoint, save_obj should be a list of dict items, and the "
                        "dict should have key values 'name' and 'value', but got "
                        f"{type(item)} and {item}."
                    )
                name, data = item["name"], item["data"]
                if not isinstance(name, str):
                    raise TypeError(
                        "For save_checkpoint, when save_obj is a list of dict items, the name in "
                        f"dict should be string, but got {type(name)}."
                    )
                if not (isinstance(data, Tensor) or is_torch_tensor(data)):
                    raise TypeError(
                        "For save_checkpoint, when save_obj is a list of dict items, the data in "
                        f"dict should be parameter, but got {type(data)}."
                    )
                if keep(name):
                    _value(name, data, out, dtypes)
        else:
            for param in save_obj:
                if not isinstance(param, Parameter):
                    raise TypeError(
                        "For save_checkpoint, when save_obj is made up by list of Parameter,the "
                        f"param should be parameter, but got {type(param)}"
                    )
                if keep(param.name):
                    _value(param.name, param, out, dtypes)
    elif isinstance(save_obj, dict):
        for name, value in save_obj.items():
            if not isinstance(name, str):
                raise TypeError(
                    "For save_checkpoint, when save_obj is made up by dict, the key should be str "
                    f"andvalue should be Parameter, but got the type of key is {type(name)} "
                    f"andthe type of value is {type(value)}"
                )
            if not keep(name):
                continue
            if is_nested(value):  # nested training state: flattened (mindckpt.state's rule)
                for flat_name, leaf in flatten_state(value, prefix=name,
                                                     text_as_bytes=fmt == "safetensors").items():
                    _value(flat_name, leaf, out, dtypes)
            else:
                _value(name, value, out, dtypes)
    else:  # the caller validated the type; keep the check for direct callers
        raise TypeError(
            "For 'save_checkpoint', the parameter 'save_obj' must be nn.Cell, list or dict, "
            f"but got {type(save_obj)}."
        )
    for name, value in (append_dict or {}).items():
        _value(name, value, out, dtypes)
    return [Record(name, value, dtypes.get(name)) for name, value in out.items()]
