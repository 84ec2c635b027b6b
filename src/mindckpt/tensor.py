"""Tensor, Parameter and the dtype table.

One table maps each MindSpore dtype name (as stored in ``TensorProto.tensor_type`` and shown in
reprs) to its numpy dtype, its safetensors code and its torch dtype name.  Everything else in the
package goes through :func:`dtype_of_name`, :func:`dtype_of_numpy` and :func:`to_numpy`.

``Tensor`` and ``Parameter`` are thin wrappers around a numpy array: ``asnumpy()`` returns the
array itself (no copy), so loading a checkpoint never copies a tensor a second time.
"""

from __future__ import annotations

import builtins
import itertools
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

from .adapters.torch import is_device_tensor, is_torch_tensor, torch_to_numpy  # noqa: F401 - re-exported

__all__ = [
    "Type",
    "Tensor",
    "Parameter",
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool_",
    "qint4x2",
]


@dataclass(frozen=True, eq=False)
class Type:
    """A MindSpore dtype (``mindspore.float32`` ...): ``str()`` gives its name (``Float32``),
    ``repr()`` MindSpore's ``mindspore.float32``."""

    name: str  # MindSpore name: "Float32"
    np_dtype: np.dtype  # storage dtype, little-endian
    st_code: str | None  # safetensors code, None when safetensors cannot hold it
    torch_name: str | None  # attribute of the torch module
    kind: str  # "float", "int", "uint", "bool" (families used by load_param_into_net)

    @property
    def itemsize(self) -> int:
        return self.np_dtype.itemsize

    @property
    def is_floating_point(self) -> bool:
        return self.kind == "float"

    @property
    def is_signed(self) -> bool:
        return self.kind in ("float", "int")

    @property
    def is_complex(self) -> bool:
        return False

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return "mindspore." + self.name.lower()  # MindSpore's repr: mindspore.float32

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Type):
            return self.name == other.name
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)


def _t(name: str, np_dtype: Any, st: str | None, torch_name: str | None, kind: str) -> Type:
    return Type(name, np.dtype(np_dtype).newbyteorder("<"), st, torch_name, kind)


float16 = _t("Float16", np.float16, "F16", "float16", "float")
float32 = _t("Float32", np.float32, "F32", "float32", "float")
float64 = _t("Float64", np.float64, "F64", "float64", "float")
bfloat16 = _t("BFloat16", ml_dtypes.bfloat16, "BF16", "bfloat16", "float")
int8 = _t("Int8", np.int8, "I8", "int8", "int")
int16 = _t("Int16", np.int16, "I16", "int16", "int")
int32 = _t("Int32", np.int32, "I32", "int32", "int")
int64 = _t("Int64", np.int64, "I64", "int64", "int")
uint8 = _t("UInt8", np.uint8, "U8", "uint8", "uint")
uint16 = _t("UInt16", np.uint16, "U16", "uint16", "uint")
uint32 = _t("UInt32", np.uint32, "U32", "uint32", "uint")
uint64 = _t("UInt64", np.uint64, "U64", "uint64", "uint")
bool_ = _t("Bool", np.bool_, "BOOL", "bool", "bool")
# MindSpore's qint4x2: one stored byte per element, nothing packed (format-spec §4.2).
qint4x2 = _t("Int4", np.int8, "I8", None, "int")

DTYPES: tuple[Type, ...] = (
    float16, float32, float64, bfloat16,
    int8, int16, int32, int64,
    uint8, uint16, uint32, uint64,
    bool_, qint4x2,
)  # fmt: skip

_BY_NAME = {t.name: t for t in DTYPES}
_BY_NUMPY = {t.np_dtype: t for t in DTYPES if t is not qint4x2}
_BY_ST = {t.st_code: t for t in DTYPES if t is not qint4x2}
STR_TYPE_NAME = "str"

#: MindSpore's alias names (``mindspore.common.dtype.__all__``) for the dtypes above, the names
#: ``Tensor.astype("half")`` accepts. ``mindckpt.common.dtype`` re-exports them as attributes.
DTYPE_ALIASES: dict[str, Type] = {
    "bool_": bool_, "int8": int8, "byte": int8, "int16": int16, "short": int16,
    "int32": int32, "intc": int32, "int64": int64, "long": int64, "intp": int64,
    "uint8": uint8, "ubyte": uint8, "uint16": uint16, "ushort": uint16, "uint32": uint32,
    "uintc": uint32, "uint64": uint64, "uintp": uint64, "float16": float16, "half": float16,
    "float32": float32, "single": float32, "float64": float64, "double": float64,
    "bfloat16": bfloat16, "qint4x2": qint4x2,
}  # fmt: skip
_BY_PYTYPE = {bool: bool_, int: int64, float: float64}  # mindspore.pytype_to_dtype


def dtype_of_name(name: str) -> Type | None:
    """The dtype stored under ``tensor_type`` ``name`` (case-sensitive), or None."""
    return _BY_NAME.get(name)


def dtype_of_st(code: str) -> Type | None:
    return _BY_ST.get(code)


_BY_TORCH = {f"torch.{t.torch_name}": t for t in DTYPES if t.torch_name}


def dtype_of_torch(torch_dtype: Any) -> Type | None:
    """The MindSpore dtype of a torch dtype (``torch.float32`` -> Float32), or None."""
    return _BY_TORCH.get(str(torch_dtype))


def dtype_of_numpy(dt: np.dtype) -> Type | None:
    """The MindSpore dtype of a numpy dtype (any byte order), or None if it has none."""
    dt = np.dtype(dt)
    if dt.byteorder == ">":
        dt = dt.newbyteorder("<")
    return _BY_NUMPY.get(dt)


def _as_type(dtype: Any) -> Type:
    if isinstance(dtype, Type):
        return dtype
    t = dtype_of_numpy(np.dtype(dtype))
    if t is None:
        raise TypeError(f"mindckpt has no MindSpore dtype for numpy dtype {np.dtype(dtype)}")
    return t


def _as_dtype(dtype: Any, where: str) -> Type:
    """``dtype`` as ``Tensor.astype`` takes it: a Type, an alias name, a Python or numpy type."""
    if isinstance(dtype, str):
        t = DTYPE_ALIASES.get(dtype)
        if t is None:
            raise TypeError(
                f"For {where}, the string input type must be one of {list(DTYPE_ALIASES)}, "
                f"but got '{dtype}'."
            )
        return t
    if dtype in _BY_PYTYPE:
        return _BY_PYTYPE[dtype]
    try:
        return _as_type(dtype)
    except TypeError as e:
        raise TypeError(f"For {where}, the argument 'dtype' must be a mindspore dtype, "
                        f"an alias name or a numpy dtype, but got {dtype!r}.") from e


def meta(x: Any) -> tuple[tuple[int, ...], Type | None, int]:
    """``(shape, dtype, nbytes)`` of an ndarray or torch tensor, without converting it."""
    if is_torch_tensor(x):
        return tuple(x.shape), dtype_of_torch(x.dtype), x.numel() * x.element_size()
    a = x if isinstance(x, np.ndarray) else to_numpy(x)
    return tuple(a.shape), dtype_of_numpy(a.dtype), int(a.nbytes)


def to_numpy(x: Any) -> np.ndarray:
    """A numpy view (no copy when possible) of a Tensor, Parameter, ndarray or torch tensor."""
    if isinstance(x, Tensor):
        return x._array
    if isinstance(x, np.ndarray):
        return x
    if is_torch_tensor(x):
        return torch_to_numpy(x)
    return np.asarray(x)


def _tensor_dtype(dtype: Any) -> Type:
    """``Tensor(..., dtype)``: a mindckpt dtype or numpy dtype, with MindSpore's message."""
    try:
        return _as_type(dtype)
    except TypeError as e:
        names = ", ".join(repr(t) for t in DTYPES)
        raise TypeError(f"For 'Tensor', the 'dtype' should be one of [{names}], but got "
                        f"'{dtype!r}'.") from e


#: ``(initializer, Initializer)`` of :mod:`mindckpt.common.initializer`, which registers them
#: when it is imported (``import mindckpt`` does), so that this module need not import it back.
_INITIALIZERS: tuple[Any, Any] | None = None


def _initializers() -> tuple[Any, Any]:
    if _INITIALIZERS is None:
        raise RuntimeError("mindckpt.common.initializer is not loaded; import mindckpt first")
    return _INITIALIZERS


class Tensor:
    """A MindSpore-like tensor backed by a numpy array."""

    __slots__ = ("_array", "_dtype", "_init")
    _array: np.ndarray
    _dtype: Type
    _init: builtins.bool  # made from an Initializer (MindSpore's init_data() accepts only those)

    def __init__(self, input_data: Any = None, dtype: Any = None, shape: Any = None, init: Any = None):
        if init is not None or (input_data is None and shape is None):
            if init is None or input_data is not None or shape is None or dtype is None:
                if input_data is None and init is None:
                    raise TypeError("For 'Tensor', the type of 'input_data' should be a Tensor, "
                                    "ndarray, list, tuple, float, int or bool, but got type "
                                    "'NoneType'.")
                raise ValueError("init, dtype and shape must have values at the same time.")
            initializer, Initializer = _initializers()
            if not isinstance(init, Initializer):
                raise TypeError(f"For 'Tensor', 'init' must be an Initializer (such as "
                                f"One(), Normal()), but got {type(init)}.")
            filled = initializer(init, shape, dtype)  # filled now: MindSpore defers to init_data
            input_data, dtype = filled, filled._dtype
        if input_data is None:
            # MindSpore leaves this tensor uninitialized (its use raises); we fill zeros.
            t = _tensor_dtype(dtype if dtype is not None else float32)
            arr = np.zeros(tuple(shape), dtype=t.np_dtype)
        elif isinstance(input_data, Tensor):
            arr = input_data._array
            t = input_data._dtype
        else:
            arr = to_numpy(input_data)
            if arr.dtype == np.float64 and isinstance(input_data, (float, list, tuple)) and not (
                isinstance(input_data, np.generic)
            ):
                arr = arr.astype(np.float32)  # MindSpore: Tensor(1.5), Tensor([1.0]) are Float32
            t = None
        if dtype is not None:
            t = _tensor_dtype(dtype)
            if arr.dtype != t.np_dtype:
                arr = arr.astype(t.np_dtype)
        if t is None:
            t = _as_type(arr.dtype)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        object.__setattr__(self, "_array", arr)
        object.__setattr__(self, "_dtype", t)
        object.__setattr__(self, "_init", isinstance(input_data, Tensor) and input_data._init)

    # numpy-like surface
    def asnumpy(self) -> np.ndarray:
        """The backing numpy array (not a copy)."""
        return self._array

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self._array if dtype is None else self._array.astype(dtype)

    @property
    def dtype(self) -> Type:
        return self._dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._array.shape)

    @property
    def ndim(self) -> int:
        return self._array.ndim

    @property
    def size(self) -> int:
        return int(self._array.size)

    @property
    def nbytes(self) -> int:
        return int(self._array.nbytes)

    @property
    def itemsize(self) -> int:
        return self._dtype.itemsize

    def numpy(self) -> np.ndarray:
        """The backing numpy array (not a copy), as ``asnumpy()``."""
        return self._array

    @staticmethod
    def from_numpy(array: np.ndarray) -> Tensor:
        """A Tensor sharing memory with ``array`` (a C-contiguous copy when it is not)."""
        if not isinstance(array, np.ndarray):
            raise TypeError("Expected a NumPy array.")
        return Tensor(np.ascontiguousarray(array))

    def astype(self, dtype: Any, copy: bool = True) -> Tensor:
        """A Tensor of ``dtype`` (a dtype, an alias name like ``"half"``, a numpy or Python type).

        ``copy=False`` returns ``self`` when the dtype already matches; otherwise a new array.
        """
        t = _as_dtype(dtype, "Tensor.astype")
        if t == self._dtype and not copy:
            return self
        return Tensor(self._array.astype(t.np_dtype, copy=True), dtype=t)

    def _cast(self, t: Type) -> Tensor:
        # MindSpore's float()/half()/...: a new Tensor; on the same dtype it shares the data.
        if t == self._dtype:
            return Tensor(self._array, dtype=t)
        return Tensor(self._array.astype(t.np_dtype), dtype=t)

    def float(self) -> Tensor:
        return self._cast(float32)

    def half(self) -> Tensor:
        return self._cast(float16)

    def double(self) -> Tensor:
        return self._cast(float64)

    def bfloat16(self) -> Tensor:
        return self._cast(bfloat16)

    def int(self) -> Tensor:
        return self._cast(int32)

    def long(self) -> Tensor:
        return self._cast(int64)

    def short(self) -> Tensor:
        return self._cast(int16)

    def byte(self) -> Tensor:
        return self._cast(uint8)

    def bool(self) -> Tensor:
        return self._cast(bool_)

    def copy(self) -> Tensor:
        """A Tensor with its own copy of the data (a zero-size Tensor returns itself)."""
        if self._array.size == 0:
            return self
        return Tensor(self._array.copy(), dtype=self._dtype)

    def set_dtype(self, dtype: Type) -> Type:
        """Cast the data to ``dtype`` in place; returns the new dtype (MindSpore's contract)."""
        if not isinstance(dtype, Type):
            raise RuntimeError(
                f"Unable to cast Python instance of type {type(dtype)} to C++ type "
                "'std::shared_ptr<mindspore::Type>'"
            )
        if dtype != self._dtype:
            object.__setattr__(self, "_array", self._array.astype(dtype.np_dtype))
            object.__setattr__(self, "_dtype", dtype)
        return dtype

    def item(self) -> Any:
        """The value of a one-element Tensor as a Python scalar."""
        return self._array.item()

    def tolist(self) -> Any:
        return self._array.tolist()

    def init_data(self, slice_index: Any = None, shape: Any = None,
                  opt_shard_group: Any = None) -> Tensor:
        """``self`` for a Tensor made by an initializer (already filled here; MindSpore fills it
        now). As in MindSpore, a Tensor made from data, or one already passed to ``init_data``,
        raises ``TypeError``."""
        if not self._init:
            raise TypeError("init_data must be set Tensor.init, init can't be None")
        object.__setattr__(self, "_init", False)
        return self

    def __len__(self) -> builtins.int:
        return len(self._array)

    def __repr__(self) -> str:
        return (
            f"Tensor(shape={list(self.shape)}, dtype={self._dtype.name}, value="
            f"{_format_value(self._array, self._dtype)})"
        )

    def __str__(self) -> str:
        return str(self._array)


def _format_value(a: np.ndarray, t: Type) -> str:
    if a.ndim == 0:
        return f" {a.item()}"
    if t.kind == "float" and t is not bfloat16:
        digits = 4 if t is float16 else 8
        body = np.array2string(
            a, separator=", ", formatter={"float_kind": lambda x: f"{x: .{digits}e}"}, threshold=1000
        )
    else:
        body = np.array2string(a, separator=", ", threshold=1000)
    return (" " if a.ndim == 1 else "\n") + body


_param_ids = itertools.count(1)
#: What the flags of a Parameter built by :func:`loaded_parameter` read as until set: the
#: defaults of ``Parameter.__init__``.
_PARAMETER_DEFAULTS: dict[str, Any] = {
    "_init": False, "requires_grad": True, "layerwise_parallel": False,
    "parallel_optimizer": True, "storage_format": "", "device": None,
}


class Parameter(Tensor):
    """A named, trainable Tensor, printed exactly as MindSpore prints it."""

    __slots__ = ("name", "requires_grad", "layerwise_parallel", "parallel_optimizer",
                 "storage_format", "device", "__weakref__")
    name: str
    requires_grad: builtins.bool
    layerwise_parallel: builtins.bool
    parallel_optimizer: builtins.bool
    storage_format: str  # Ascend placement hints: recorded, no effect on checkpoints
    device: str | None

    def __init__(
        self,
        default_input: Any,
        name: str | None = None,
        requires_grad: builtins.bool = True,
        layerwise_parallel: builtins.bool = False,
        parallel_optimizer: builtins.bool = True,
        storage_format: str = "",
        device: str | None = None,
    ):
        if isinstance(default_input, bool):
            raise ValueError("Parameter data can not be `bool`")
        super().__init__(default_input)
        if name is None or name == "":
            name = f"Parameter#{next(_param_ids)}"
        object.__setattr__(self, "name", name)
        if not isinstance(requires_grad, bool):
            raise TypeError("The argument `requires_grad` must be bool type")
        object.__setattr__(self, "requires_grad", requires_grad)
        object.__setattr__(self, "layerwise_parallel", layerwise_parallel)
        object.__setattr__(self, "parallel_optimizer", parallel_optimizer)
        object.__setattr__(self, "storage_format", storage_format)
        object.__setattr__(self, "device", device)

    def __setattr__(self, key: str, value: Any) -> None:
        if key == "name" and not isinstance(value, str):
            raise TypeError(f"The type of the Parameter's name should be 'str', but got {type(value)}.")
        if key == "requires_grad" and not isinstance(value, bool):
            raise TypeError("The argument `requires_grad` must be bool type")
        object.__setattr__(self, key, value)

    def __getattr__(self, key: str) -> Any:
        # only reached for an unset slot (a loaded Parameter's flags) or a missing attribute
        try:
            return _PARAMETER_DEFAULTS[key]
        except KeyError:
            raise AttributeError(f"'Parameter' object has no attribute '{key}'") from None

    @property
    def data(self) -> Parameter:
        return self

    def set_data(self, data: Any, slice_shape: bool = False) -> Parameter:
        """Replace the data with ``data`` (a Tensor, int or float) cast to this Parameter's
        dtype, as MindSpore does; the shape follows ``data``. Name and flags are kept."""
        if not isinstance(data, (Tensor, builtins.int, builtins.float)):
            raise TypeError("Parameter data must be [`Tensor`, `int`, `float`] or a kind of "
                            f"`Tensor` (like `Tensor`). But with type {type(data)}.")
        if not isinstance(data, Tensor):
            if self._dtype in (int8, int16, int32, int64) and isinstance(data, builtins.float):
                raise TypeError("Incoming Parameter dtype can not be converted to current dtype "
                                f"implicitly. Current dtype is {self._dtype}, and incoming is "
                                "Float. Use .set_dtype(xxx) to change the dtype.")
            data = Tensor(data, self._dtype)
        arr = data._array
        if data._dtype != self._dtype:
            arr = arr.astype(self._dtype.np_dtype)
        object.__setattr__(self, "_array", arr)
        return self

    def init_data(self, *args: Any, **kwargs: Any) -> Parameter:
        return self

    def clone(self, init: Any = "same") -> Parameter:
        """A new Parameter with the same name, requires_grad and flags, and its own data:
        a copy (``init="same"``), or ``init`` (a Tensor, an initializer name, a number) drawn
        with this Parameter's shape and dtype."""
        if isinstance(init, str) and init == "same":
            data: Any = self._array.copy()
        else:
            initializer, _ = _initializers()
            data = initializer(init, self.shape, self._dtype).asnumpy()
        return Parameter(Tensor(data, dtype=self._dtype), self.name, self.requires_grad,
                         self.layerwise_parallel, self.parallel_optimizer)

    def copy(self) -> Parameter:
        """``clone(init="same")``: a new Parameter, same name, its own data."""
        return self.clone(init="same")

    def __repr__(self) -> str:
        return (
            f"Parameter (name={self.name}, shape={self.shape}, dtype={self._dtype.name}, "
            f"requires_grad={self.requires_grad})"
        )

    __str__ = __repr__


_new = object.__new__
_set_array: Any = Tensor.__dict__["_array"].__set__  # the slots' own setters
_set_dtype: Any = Tensor.__dict__["_dtype"].__set__
_set_name: Any = Parameter.__dict__["name"].__set__


def loaded_parameter(array: np.ndarray, dtype: Type, name: str) -> Parameter:
    """``Parameter(Tensor(array, dtype), name)`` for what a reader produced: ``array`` is
    already of ``dtype``'s numpy dtype and little-endian, ``name`` a non-empty ``str``.

    The same object the constructor makes, without its argument checks and conversions, and
    with the flags left at their defaults (:data:`_PARAMETER_DEFAULTS`, read through
    ``Parameter.__getattr__`` until set): a load of a file of tiny entries builds millions of
    these, and the constructor was a third of its time (issue 13).
    """
    p = _new(Parameter)
    _set_array(p, array)
    _set_dtype(p, dtype)
    _set_name(p, name)
    return p
