"""``mindspore.common.tensor``: ``Tensor`` and the ``tensor`` function."""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor

__all__ = ["Tensor", "tensor", "from_numpy", "is_tensor"]


def tensor(input_data: Any = None, dtype: Any = None, shape: Any = None, init: Any = None,
           const_arg: bool = False, device: Any = None) -> Tensor:
    """``mindspore.tensor``: a Tensor holding a copy of ``input_data``."""
    if device is not None:
        raise NotImplementedError(
            "mindckpt Tensors live in host memory; 'device' is not supported (pass a torch "
            "tensor to save_checkpoint to keep data on a device)"
        )
    if input_data is None:
        return Tensor(None, dtype=dtype, shape=shape)
    t = Tensor(input_data, dtype=dtype)
    if isinstance(input_data, (bool, int, float, list, tuple)):
        return t  # already a new array
    return t.copy()  # Tensor() wraps arrays without copying; tensor() copies, as MindSpore


def from_numpy(array: Any) -> Tensor:
    """``mindspore.from_numpy``: a Tensor sharing memory with ``array`` (see Tensor.from_numpy)."""
    return Tensor.from_numpy(array)


def is_tensor(obj: Any) -> bool:
    """``mindspore.is_tensor``: whether ``obj`` is a Tensor (a Parameter is one)."""
    return isinstance(obj, Tensor)
