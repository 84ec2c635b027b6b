"""``mindspore.common.dtype`` (``mstype``): MindSpore's dtype names, aliases and helpers.

The dtype objects are the ones in :mod:`mindckpt.tensor` (one table); this module gives them
MindSpore's alias names (``mstype.half``, ``mstype.single``, ``mstype.long`` ...), the family
tuples (``mstype.float_type`` ...) and the conversion helpers.

``float_``, ``int_``, ``uint`` and ``number`` are MindSpore's width-less families (``Float``,
``Int``, ``UInt``, ``Number``): they compare equal only to themselves and cannot make a
Tensor, as in MindSpore.  ``mstype.float``, ``mstype.int`` and ``mstype.bool`` are
``float32``, ``int32`` and ``bool_``, as in MindSpore.

Complex, float8 and hifloat8 dtypes are not here: mindckpt's files and arrays cannot hold
them, so asking for one raises ``AttributeError`` naming the dtype.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from ..tensor import DTYPE_ALIASES, DTYPES, Type, dtype_of_numpy

__all__ = [
    "Type", *DTYPE_ALIASES, "float_", "int_", "uint", "number",
    "int_type", "uint_type", "float_type", "signed_type", "number_type", "all_types",
    "dtype_to_nptype", "dtype_to_pytype", "pytype_to_dtype",
]  # fmt: skip

# MindSpore's names, every one an entry of tensor.DTYPE_ALIASES (the single home).
bool_ = DTYPE_ALIASES["bool_"]
int8 = DTYPE_ALIASES["int8"]
byte = DTYPE_ALIASES["byte"]
int16 = DTYPE_ALIASES["int16"]
short = DTYPE_ALIASES["short"]
int32 = DTYPE_ALIASES["int32"]
intc = DTYPE_ALIASES["intc"]
int64 = DTYPE_ALIASES["int64"]
long = DTYPE_ALIASES["long"]
intp = DTYPE_ALIASES["intp"]
uint8 = DTYPE_ALIASES["uint8"]
ubyte = DTYPE_ALIASES["ubyte"]
uint16 = DTYPE_ALIASES["uint16"]
ushort = DTYPE_ALIASES["ushort"]
uint32 = DTYPE_ALIASES["uint32"]
uintc = DTYPE_ALIASES["uintc"]
uint64 = DTYPE_ALIASES["uint64"]
uintp = DTYPE_ALIASES["uintp"]
float16 = DTYPE_ALIASES["float16"]
half = DTYPE_ALIASES["half"]
float32 = DTYPE_ALIASES["float32"]
single = DTYPE_ALIASES["single"]
float64 = DTYPE_ALIASES["float64"]
double = DTYPE_ALIASES["double"]
bfloat16 = DTYPE_ALIASES["bfloat16"]
qint4x2 = DTYPE_ALIASES["qint4x2"]


class _Family:
    """A width-less MindSpore dtype family (``mstype.float_`` is ``Float``)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return "mindspore." + self.name.lower()


float_ = _Family("Float")
int_ = _Family("Int")
uint = _Family("UInt")
number = _Family("Number")

int_type = (int8, int16, int32, int64)
uint_type = (uint8, uint16, uint32, uint64)
float_type = (float16, float32, float64, bfloat16)
signed_type = (*int_type, float16, float32, float64, bfloat16, qint4x2)
number_type = (*int_type, *uint_type, float16, float32, float64, bfloat16, qint4x2)
all_types = (bool_, *number_type)

_MISSING = ("complex64", "cfloat", "complex128", "cdouble", "float8_e4m3fn", "float8_e5m2",
            "hifloat8")


def dtype_to_nptype(type_: Type) -> type:
    """The numpy scalar type of a MindSpore dtype (``float32`` -> ``numpy.float32``)."""
    if not isinstance(type_, Type) or type_ is qint4x2:
        raise KeyError(type_)  # MindSpore: KeyError for dtypes numpy has no type for
    return type_.np_dtype.type


def dtype_to_pytype(type_: Type) -> type:
    """The Python type of a MindSpore dtype: ``bool``, ``int`` or ``float``."""
    if not isinstance(type_, Type):
        raise NotImplementedError(f"The type: {type_} is not supported")
    return {"bool": builtins.bool, "int": builtins.int, "uint": builtins.int,
            "float": builtins.float}[type_.kind]


def pytype_to_dtype(obj: Any) -> Type:
    """The MindSpore dtype of a Python or numpy type (``int`` -> Int64, ``np.float16`` ...)."""
    if isinstance(obj, Type):
        return obj
    if not isinstance(obj, type):
        raise TypeError(
            "For 'pytype_to_dtype', the argument 'obj' must be a python type object,such as "
            f"int, float, str, etc. But got type {type(obj)}."
        )
    if obj is builtins.bool:
        return bool_
    if obj is builtins.int:
        return int64
    if obj is builtins.float:
        return float64
    t = dtype_of_numpy(np.dtype(obj))
    if t is None:
        raise NotImplementedError(f"The python type {obj} cannot be converted to MindSpore type.")
    return t


def __getattr__(name: str) -> Any:
    if name in _MISSING:
        raise AttributeError(
            f"mindckpt.common.dtype has no {name!r}: mindckpt cannot store {name} tensors "
            "(supported: " + ", ".join(t.name for t in DTYPES) + ")"
        )
    raise AttributeError(f"module 'mindckpt.common.dtype' has no attribute {name!r}")


# Last: these names shadow the builtins inside this module, as in MindSpore's.
globals().update({"float": float32, "int": int32, "bool": bool_})
