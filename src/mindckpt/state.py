"""Nested training state <-> flat, MindSpore-loadable checkpoint entries (no pickle).

A torch optimizer's ``state_dict()``, an LR scheduler's, a ``GradScaler``'s, RNG states
(``random.getstate()``, ``numpy.random.get_state()``, ``torch.get_rng_state()``,
``torch.cuda.get_rng_state_all()``) and counters are nested dicts, lists and tuples of tensors
and scalars.  :func:`flatten_state` turns such a value into ``{name: entry}`` that
``save_checkpoint`` writes as ordinary tensors and strings (a ``.ckpt`` that MindSpore loads, or a
safetensors file); :func:`unflatten_state` turns ``load_checkpoint``'s result back into the same
nested value, types included.

The rule
--------
``flatten_state(obj, prefix)`` walks ``obj``; the path of a leaf is its dict keys and list/tuple
indices, and its **name** is ``prefix`` and the path joined with ``"."``::

    {"state": {0: {"step": t, "exp_avg": t}}, "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999),
     "params": [0]}]}       with prefix "optimizer" gives
    optimizer.state.0.step  optimizer.state.0.exp_avg  optimizer.param_groups.0.lr
    optimizer.param_groups.0.betas  optimizer.param_groups.0.params      + optimizer.__schema__

Each leaf becomes one entry:

========================  =========================================================
leaf                      entry
========================  =========================================================
torch tensor              the tensor (its dtype, bfloat16 included; restored on CPU)
numpy array / scalar      the array (a numpy scalar as a 0-d array of its dtype)
``bool``                  0-d ``Bool``
``int``                   0-d ``Int64``; outside int64: ``str`` of its decimal digits
``float``                 0-d ``Float64`` (exact)
``str``                   a ``str`` entry
``bytes``                 1-d ``UInt8``
``None``                  no entry (the schema says ``None``)
list/tuple of only int,   one 1-d ``Int64`` / ``Float64`` / ``Bool`` array (``betas``,
float or only bool        ``random.getstate()``'s 625 words); otherwise one entry per item
empty dict/list/tuple     no entry
========================  =========================================================

(``text_as_bytes=True``, for safetensors, which holds no strings: ``str`` entries become 1-d
``UInt8`` arrays of their UTF-8 bytes.)

The structure is stored once, as the ``str`` entry ``{prefix}.__schema__`` (``__schema__``
without a prefix): JSON, ``{"v": 1, "tree": NODE}`` where a NODE is ``{"dict": [[key, NODE],
...]}`` (a key is a JSON string or integer, as in the dict), ``{"list": [NODE, ...]}``,
``{"tuple": [...]}``, ``{"pack": "int"|"float"|"bool", "seq": "list"|"tuple"}`` or a leaf
``{"leaf": KIND}`` with KIND one of ``tensor``, ``ndarray``, ``npscalar``, ``bool``, ``int``,
``bigint``, ``float``, ``str``, ``bytes``, ``none``.  So ``None``, tuples, int dict keys and the
torch-vs-numpy distinction survive, and a tool that knows nothing of this (MindSpore) still sees
plain, well-named tensors.

Dict keys must be ``str`` or ``int``; two paths that give the same name (``{"a.b": 1, "a":
{"b": 2}}``) and names ending in ``__schema__`` are refused with ``ValueError``; other leaf types
(sets, objects) with ``TypeError`` naming the path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from mindckpt.adapters.torch import is_torch_tensor, numpy_to_torch
from mindckpt.errors import FormatError
from mindckpt.tensor import dtype_of_numpy

__all__ = ["flatten_state", "unflatten_state", "is_nested", "SCHEMA", "SCHEMA_VERSION"]

SCHEMA = "__schema__"
SCHEMA_VERSION = 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def is_nested(value: Any) -> bool:
    """Whether ``value`` is a container :func:`flatten_state` expands (dict, list, tuple)."""
    return isinstance(value, (Mapping, list, tuple))


def _join(prefix: str, part: str) -> str:
    return f"{prefix}.{part}" if prefix else part


def _schema_name(prefix: str) -> str:
    return _join(prefix, SCHEMA)


def _pack_kind(seq: list | tuple) -> str | None:
    if not seq:
        return None
    kinds = {type(x) for x in seq}
    if kinds == {bool}:
        return "bool"
    if kinds == {float}:
        return "float"
    if kinds == {int} and all(_INT64_MIN <= x <= _INT64_MAX for x in seq):
        return "int"
    return None


_PACK_DTYPES = {"int": np.int64, "float": np.float64, "bool": np.bool_}


def _utf8(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


class _Flattener:
    def __init__(self, text_as_bytes: bool) -> None:
        self.out: dict[str, Any] = {}
        self.paths: dict[str, str] = {}
        self.text_as_bytes = text_as_bytes

    def text(self, value: str) -> Any:
        return _utf8(value) if self.text_as_bytes else value

    def put(self, name: str, value: Any, where: str) -> None:
        if not name:
            raise TypeError(
                "flatten_state: a single value (not a dict, list or tuple) needs a prefix to be "
                "its name: flatten_state(value, prefix='name')."
            )
        if name.endswith(SCHEMA):
            raise ValueError(f"flatten_state: the name {name!r} (at {where}) is reserved.")
        if name in self.out:
            raise ValueError(
                f"flatten_state: {where} and {self.paths[name]} both give the entry name "
                f"{name!r}; rename one of the keys (a key containing '.' can collide)."
            )
        self.out[name] = value
        self.paths[name] = where

    def node(self, value: Any, name: str, where: str) -> dict[str, Any]:
        if isinstance(value, Mapping):
            items = []
            for key, child in value.items():
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise TypeError(
                        f"flatten_state: the key {key!r} at {where} is a "
                        f"{type(key).__name__}; keys must be str or int."
                    )
                items.append([key, self.node(child, _join(name, str(key)), f"{where}[{key!r}]")])
            return {"dict": items}
        if isinstance(value, (list, tuple)):
            seq = "tuple" if isinstance(value, tuple) else "list"
            pack = _pack_kind(value) if name else None  # a root sequence: one entry per item
            if pack is not None:
                self.put(name, np.array(value, dtype=_PACK_DTYPES[pack]), where)
                return {"pack": pack, "seq": seq}
            children = [
                self.node(child, _join(name, str(i)), f"{where}[{i}]")
                for i, child in enumerate(value)
            ]
            return {seq: children}
        return {"leaf": self.leaf(value, name, where)}

    def leaf(self, value: Any, name: str, where: str) -> str:
        if value is None:
            return "none"
        if is_torch_tensor(value):
            if str(value.layout) != "torch.strided" or value.is_quantized:
                raise TypeError(
                    f"flatten_state: the tensor at {where} is sparse or quantized; save its "
                    "dense form (tensor.to_dense() / tensor.dequantize())."
                )
            self.put(name, value.detach(), where)
            return "tensor"
        if isinstance(value, np.ndarray):
            if dtype_of_numpy(value.dtype) is None:
                raise TypeError(
                    f"flatten_state: the numpy array at {where} has dtype {value.dtype}, which a "
                    "checkpoint cannot hold; only numeric and bool arrays can be saved."
                )
            self.put(name, value, where)
            return "ndarray"
        if isinstance(value, np.generic):
            if dtype_of_numpy(value.dtype) is None:
                raise TypeError(f"flatten_state: the numpy scalar at {where} is {value.dtype}.")
            self.put(name, np.array(value), where)
            return "npscalar"
        if isinstance(value, bool):
            self.put(name, np.array(value, dtype=np.bool_), where)
            return "bool"
        if isinstance(value, int):
            if _INT64_MIN <= value <= _INT64_MAX:
                self.put(name, np.array(value, dtype=np.int64), where)
                return "int"
            self.put(name, self.text(str(value)), where)
            return "bigint"
        if isinstance(value, float):
            self.put(name, np.array(value, dtype=np.float64), where)
            return "float"
        if isinstance(value, str):
            self.put(name, self.text(value), where)
            return "str"
        if isinstance(value, (bytes, bytearray)):
            self.put(name, np.frombuffer(bytes(value), dtype=np.uint8).copy(), where)
            return "bytes"
        raise TypeError(
            f"flatten_state: the value at {where} is a {type(value).__module__}."
            f"{type(value).__qualname__}; only dicts, lists, tuples, tensors, numpy arrays, "
            "bool, int, float, str, bytes and None can be saved (no pickle)."
        )


def flatten_state(obj: Any, prefix: str = "", *, text_as_bytes: bool = False) -> dict[str, Any]:
    """``{name: entry}`` for the nested ``obj`` (see the module doc), plus its schema entry.

    Tensors and arrays are not copied.  ``save_checkpoint(flatten_state(obj, "opt"), path)``
    writes it; ``unflatten_state(load_checkpoint(path))["opt"]`` gives ``obj`` back.
    ``text_as_bytes=True`` stores the schema and every ``str``/big-int leaf as a 1-d ``UInt8``
    array of its UTF-8 bytes instead of a ``str`` entry: safetensors files hold no strings.
    """
    if not isinstance(prefix, str):
        raise TypeError(f"flatten_state: prefix must be a str, not {type(prefix).__name__}.")
    f = _Flattener(text_as_bytes)
    tree = f.node(obj, prefix, prefix or "<root>")
    f.out[_schema_name(prefix)] = f.text(json.dumps(
        {"v": SCHEMA_VERSION, "tree": tree}, separators=(",", ":"), allow_nan=False
    ))
    return f.out


def _as_text(value: Any) -> str | None:
    """A ``str`` entry, or a 1-d UInt8 entry of UTF-8 (``text_as_bytes``); None otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return None
    arr = _array(value)
    if arr.ndim != 1 or arr.dtype != np.uint8:
        return None
    try:
        return arr.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        return None


# --------------------------------------------------------------------------- unflatten
def _array(value: Any) -> np.ndarray:
    if hasattr(value, "asnumpy"):  # mindckpt Tensor / Parameter
        return np.asarray(value.asnumpy())
    if is_torch_tensor(value):
        from mindckpt.adapters.torch import torch_to_numpy

        return torch_to_numpy(value)
    return np.asarray(value)


class _Rebuilder:
    def __init__(self, flat: Mapping[str, Any], schema_name: str) -> None:
        self.flat = flat
        self.schema_name = schema_name
        self.used: set[str] = set()

    def bad(self, name: str, why: str) -> FormatError:
        return FormatError(
            f"unflatten_state: the entry {name!r} described by {self.schema_name!r} {why}. "
            "Load the whole checkpoint (no filter_prefix/choice_func that drops it) or re-save it."
        )

    def take(self, name: str) -> Any:
        if name not in self.flat:
            raise self.bad(name, "is missing")
        self.used.add(name)
        return self.flat[name]

    def scalar(self, name: str, kinds: str) -> np.ndarray:
        arr = _array(self.take(name))
        if arr.shape != () or arr.dtype.kind not in kinds:
            raise self.bad(name, f"is {arr.dtype} of shape {arr.shape}, expected a scalar")
        return arr

    def node(self, node: Any, name: str) -> Any:
        if not isinstance(node, dict) or len(node) not in (1, 2):
            raise self.bad(name, "has a malformed schema node")
        if "dict" in node:
            out = {}
            for item in node["dict"]:
                if not isinstance(item, list) or len(item) != 2:
                    raise self.bad(name, "has a malformed dict item")
                key, child = item
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise self.bad(name, f"has a key of type {type(key).__name__}")
                out[key] = self.node(child, _join(name, str(key)))
            return out
        for seq, make in (("list", list), ("tuple", tuple)):
            if seq in node:
                children = node[seq]
                if not isinstance(children, list):
                    raise self.bad(name, "has a malformed sequence")
                return make(self.node(c, _join(name, str(i))) for i, c in enumerate(children))
        if "pack" in node:
            kind, seq_kind = node.get("pack"), node.get("seq")
            if kind not in _PACK_DTYPES or seq_kind not in ("list", "tuple"):
                raise self.bad(name, "has a malformed packed sequence")
            arr = _array(self.take(name))
            if arr.ndim != 1 or arr.dtype != np.dtype(_PACK_DTYPES[kind]):
                raise self.bad(name, f"is {arr.dtype} of shape {arr.shape}, expected 1-d {kind}")
            values = arr.tolist()
            return values if seq_kind == "list" else tuple(values)
        if "leaf" in node:
            return self.leaf(node["leaf"], name)
        raise self.bad(name, "has an unknown schema node")

    def leaf(self, kind: Any, name: str) -> Any:
        if kind == "none":
            return None
        if kind == "tensor":
            value = self.take(name)
            if is_torch_tensor(value):
                return value.detach().clone()
            return numpy_to_torch(np.array(_array(value), copy=True))
        if kind == "ndarray":
            return np.array(_array(self.take(name)), copy=True)
        if kind == "npscalar":
            arr = _array(self.take(name))
            if arr.shape != ():
                raise self.bad(name, f"has shape {arr.shape}, expected a scalar")
            return arr[()]
        if kind == "bool":
            return bool(self.scalar(name, "b"))
        if kind == "int":
            return int(self.scalar(name, "iu"))
        if kind == "float":
            return float(self.scalar(name, "f"))
        if kind in ("str", "bigint"):
            value = _as_text(self.take(name))
            if value is None:
                raise self.bad(name, "is not a str entry (nor UTF-8 bytes)")
            if kind == "str":
                return value
            try:
                return int(value)
            except ValueError:
                raise self.bad(name, "is not a decimal integer") from None
        if kind == "bytes":
            arr = _array(self.take(name))
            if arr.ndim != 1 or arr.dtype != np.uint8:
                raise self.bad(name, f"is {arr.dtype} of shape {arr.shape}, expected 1-d uint8")
            return arr.tobytes()
        raise self.bad(name, f"has the unknown leaf kind {kind!r}")


def _rebuild(flat: Mapping[str, Any], schema_name: str, root: str) -> tuple[Any, set[str]]:
    text = _as_text(flat[schema_name])
    if text is None:
        raise FormatError(f"unflatten_state: {schema_name!r} is not a str entry (nor UTF-8 "
                          "bytes).")
    try:
        doc = json.loads(text)
    except RecursionError:
        raise FormatError(f"unflatten_state: {schema_name!r} is nested too deeply.") from None
    except ValueError as exc:
        raise FormatError(f"unflatten_state: {schema_name!r} is not valid JSON: {exc}.") from None
    if not isinstance(doc, dict) or doc.get("v") != SCHEMA_VERSION or "tree" not in doc:
        raise FormatError(
            f"unflatten_state: {schema_name!r} has schema version {doc.get('v') if isinstance(doc, dict) else None!r}; "
            f"this mindckpt reads version {SCHEMA_VERSION}. Upgrade mindckpt."
        )
    r = _Rebuilder(flat, schema_name)
    try:
        value = r.node(doc["tree"], root)
    except RecursionError:
        raise FormatError(f"unflatten_state: {schema_name!r} is nested too deeply.") from None
    return value, r.used | {schema_name}


def unflatten_state(flat: Mapping[str, Any]) -> Any:
    """Rebuild what :func:`flatten_state` flattened, from its entries or ``load_checkpoint``'s.

    Every ``{prefix}.__schema__`` entry becomes the nested value at key ``prefix``; entries no
    schema describes are kept as they are.  A root schema (``__schema__``, from
    ``flatten_state(obj)`` without a prefix) returns that object itself (a dict root also gets
    the undescribed entries, e.g. ``append_info``'s ``epoch_num``).  Tensors come back as CPU
    torch tensors, arrays as numpy arrays (copies, never views of the file).
    """
    if not isinstance(flat, Mapping):
        raise TypeError(f"unflatten_state: expected a dict, not {type(flat).__name__}.")
    suffix = "." + SCHEMA
    roots = sorted(
        (n[: -len(suffix)] if n != SCHEMA else "", n)
        for n in flat
        if n == SCHEMA or n.endswith(suffix)
    )
    owner: dict[str, str] = {}
    rebuilt: dict[str, Any] = {}
    for root, schema_name in roots:
        value, names = _rebuild(flat, schema_name, root)
        owner.update(dict.fromkeys(names, root))
        rebuilt[root] = value
    rest = {k: v for k, v in flat.items() if k not in owner}
    if "" in rebuilt:
        top = rebuilt.pop("")
        if not rebuilt and not rest:
            return top
        if not isinstance(top, dict):
            raise FormatError(
                "unflatten_state: the checkpoint has a root state that is not a dict and other "
                f"entries besides ({sorted([*rebuilt, *rest])[:5]}); load them separately."
            )
        for key, value in {**rest, **rebuilt}.items():
            if key in top:
                raise FormatError(f"unflatten_state: the entry {key!r} is both in the root "
                                  "state and beside it.")
            top[key] = value
        return top
    clash = sorted(set(rebuilt) & set(rest))
    if clash:
        raise FormatError(
            f"unflatten_state: {clash[0]!r} is both a plain entry and a nested state's prefix."
        )
    out: dict[str, Any] = {}
    for k, v in flat.items():  # file order: a nested value sits where its first entry was
        holder = owner.get(k)
        if holder is None:
            out[k] = v
        elif holder not in out:
            out[holder] = rebuilt[holder]
    return out
