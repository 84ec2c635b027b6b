"""``mindspore.common.initializer``: initial values drawn with numpy, MindSpore's classes and rules.

``initializer(init, shape, dtype)`` takes an ``Initializer`` instance, one of MindSpore's names
(``"normal"``, ``"zeros"``, ``"he_uniform"`` ...), a number or a Tensor, with MindSpore's checks
and messages, so that model definitions written for MindSpore
(``nn.Dense(400, 120, weight_init=Normal(0.02))``) build unchanged. The distributions, fans and
gains are MindSpore's; the values are random like MindSpore's, not equal to them (load a
checkpoint to get trained values).

As in MindSpore, an ``Initializer`` fills a numpy array in place (``init(arr)`` calls
``_initialize(arr)``), so user subclasses written for MindSpore work, and each draw is seeded from
NumPy's global state: ``numpy.random.seed(n)`` (which ``mindspore.set_seed`` also calls) makes
initial values reproducible. Unlike MindSpore the Tensor is filled at once, not lazily.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..tensor import Tensor, _as_type, float32

__all__ = [
    "Initializer", "initializer", "TruncatedNormal", "Normal", "Uniform", "HeUniform",
    "HeNormal", "XavierUniform", "XavierNormal", "One", "Zero", "Constant", "Identity",
    "Sparse", "Dirac", "Orthogonal", "VarianceScaling",
]  # fmt: skip

_ALIAS: dict[str, type[Initializer]] = {}


def _rng() -> np.random.Generator:
    """A generator seeded from NumPy's global state (MindSpore's ``_numpy_seed``)."""
    return np.random.default_rng(int(np.random.randint(low=1, high=(1 << 63), dtype=np.int64)))


def _register(*aliases: str) -> Any:
    def reg(cls: type[Initializer]) -> type[Initializer]:
        _ALIAS.setdefault(cls.__name__.lower(), cls)
        for alias in aliases:
            _ALIAS.setdefault(alias, cls)
        return cls

    return reg


def _assign(arr: np.ndarray, value: Any) -> None:
    arr[...] = value


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError("'fan_in' and 'fan_out' can not be computed for tensor with fewer than"
                         f" 2 dimensions, but got dimensions {len(shape)}.")
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _correct_fan(shape: tuple[int, ...], mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"'mode' {mode} not supported, please use one of ['fan_in', 'fan_out']")
    fan_in, fan_out = _fans(shape)
    return fan_in if mode == "fan_in" else fan_out


def _gain(nonlinearity: str, param: Any = None) -> float:
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"For 'HeUniform', 'negative_slope' {param} is not a valid number."
                             "When 'nonlinearity' has been set to 'leaky_relu', 'negative_slope' "
                             f"should be int or float type, but got {type(param)}.")
        return math.sqrt(2.0 / (1 + slope**2))
    raise ValueError("For 'HeUniform', the argument 'nonlinearity' should be one of ['sigmoid', "
                     f"'tanh', 'relu' or 'leaky_relu'], but got {nonlinearity}.")


def _normal(mean: float, sigma: float, shape: tuple[int, ...]) -> np.ndarray:
    if sigma < 0:
        raise ValueError("sigma < 0")
    return _rng().normal(mean, sigma, size=shape).astype(np.float32)


def _uniform(a: float, b: float, shape: tuple[int, ...]) -> np.ndarray:
    return _rng().uniform(a, b, size=shape).astype(np.float32)


def _truncated_normal(a: float, b: float, mean: float, sigma: float,
                      shape: tuple[int, ...]) -> np.ndarray:
    """Normal(mean, sigma) restricted to [a, b] (absolute bounds, as MindSpore's), by resampling."""
    if sigma < 0:
        raise ValueError("sigma < 0")
    rng = _rng()
    out = rng.normal(mean, sigma, size=shape)
    bad = (out < a) | (out > b)
    for _ in range(1000):
        if not bad.any():
            break
        out[bad] = rng.normal(mean, sigma, size=int(bad.sum()))
        bad = (out < a) | (out > b)
    else:
        raise ValueError(f"TruncatedNormal: [{a}, {b}] holds almost no mass of "
                         f"Normal({mean}, {sigma}); widen the bounds")
    return out.astype(np.float32)


class Initializer:
    """Base class: ``init(arr)`` fills the numpy array ``arr`` in place (``_initialize``)."""

    def __init__(self, **kwargs: Any):
        self._kwargs = kwargs
        self._seed = None

    def _initialize(self, arr: np.ndarray) -> None:
        raise NotImplementedError("Must be overridden!")

    def __call__(self, arr: np.ndarray) -> Any:
        return self._initialize(arr)


@_register("zeros")
class Zero(Initializer):
    def _initialize(self, arr):
        arr.fill(0)


@_register("ones")
class One(Initializer):
    def _initialize(self, arr):
        arr.fill(1)


class Constant(Initializer):
    def __init__(self, value: Any):
        super().__init__(value=value)
        self.value = value

    def _initialize(self, arr):
        arr.fill(self.value)


@_register("xavier_normal")
class XavierNormal(Initializer):
    def __init__(self, gain: float = 1):
        super().__init__(gain=gain)
        self.gain = gain

    def _initialize(self, arr):
        fan_in, fan_out = _fans(arr.shape)
        _assign(arr, _normal(0, self.gain * math.sqrt(2.0 / float(fan_in + fan_out)), arr.shape))


@_register("xavier_uniform")
class XavierUniform(Initializer):
    def __init__(self, gain: float = 1):
        super().__init__(gain=gain)
        self.gain = gain

    def _initialize(self, arr):
        fan_in, fan_out = _fans(arr.shape)
        bound = self.gain * math.sqrt(6.0 / (fan_in + fan_out))
        _assign(arr, _uniform(-bound, bound, arr.shape))


@_register("he_uniform")
class HeUniform(Initializer):
    def __init__(self, negative_slope: float = 0, mode: str = "fan_in",
                 nonlinearity: str = "leaky_relu"):
        super().__init__(negative_slope=negative_slope, mode=mode, nonlinearity=nonlinearity)
        self.negative_slope, self.mode, self.nonlinearity = negative_slope, mode, nonlinearity

    def _initialize(self, arr):
        std = _gain(self.nonlinearity, self.negative_slope) / math.sqrt(
            _correct_fan(arr.shape, self.mode))
        bound = math.sqrt(3.0) * std
        _assign(arr, _uniform(-bound, bound, arr.shape))


@_register("he_normal")
class HeNormal(HeUniform):
    def _initialize(self, arr):
        std = _gain(self.nonlinearity, self.negative_slope) / math.sqrt(
            _correct_fan(arr.shape, self.mode))
        _assign(arr, _normal(0, std, arr.shape))


@_register()
class Identity(Initializer):
    def _initialize(self, arr):
        if len(arr.shape) != 2:
            raise ValueError("For Identity initializer, the dimension of the initialized tensor "
                             f"should be 2, but got {len(arr.shape)}.")
        _assign(arr, np.eye(arr.shape[0], arr.shape[1]))


@_register()
class Sparse(Initializer):
    def __init__(self, sparsity: float, sigma: float = 0.01):
        super().__init__()
        self.sparsity, self.sigma = sparsity, sigma

    def _initialize(self, arr):
        if len(arr.shape) != 2:
            raise ValueError("For Sparse initializer, the dimension of the initialized tensor "
                             f"should be 2, but got {len(arr.shape)}.")
        rows, cols = arr.shape
        zero_num = int(np.ceil(self.sparsity * rows))
        data = _normal(0, self.sigma, arr.shape)
        rng = _rng()
        for col in range(cols):
            data[rng.permutation(rows)[:zero_num], col] = 0.0
        _assign(arr, data)


@_register()
class Dirac(Initializer):
    def __init__(self, groups: int = 1):
        super().__init__()
        self.groups = groups

    def _initialize(self, arr):
        dims = len(arr.shape)
        if dims not in (3, 4, 5):
            raise ValueError("For Dirac initializer, only support to initialize tensor with "
                             f"dimension of 3, 4 or 5, but got {dims}.")
        shape = arr.shape
        if shape[0] % self.groups != 0:
            raise ValueError("For Dirac initializer, the first dimension ofthe initialized tensor "
                             f"must be divisible by groups, but got first dimension{shape[0]}, "
                             f"groups{self.groups}.")
        data = np.zeros(shape)
        per_group = shape[0] // self.groups
        centre = tuple(s // 2 for s in shape[2:])
        for group in range(self.groups):
            for d in range(min(per_group, shape[1])):
                data[(group * per_group + d, d) + centre] = 1
        _assign(arr, data)


@_register()
class Orthogonal(Initializer):
    def __init__(self, gain: float = 1.0):
        super().__init__(gain=gain)
        self.gain = gain

    def _initialize(self, arr):
        if len(arr.shape) < 2:
            raise ValueError("For Orthogonal initializer, the dimension of the initialized tensor "
                             f"should be no less than 2, but got {len(arr.shape)}.")
        rows = arr.shape[0]
        cols = int(np.prod(arr.shape)) // rows
        data = _normal(0, 1, (rows, cols))
        if rows < cols:
            data = data.T
        q, r = np.linalg.qr(data)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        _assign(arr, (q * self.gain).reshape(arr.shape))


@_register()
class VarianceScaling(Initializer):
    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal"):
        super().__init__(scale=scale, mode=mode, distribution=distribution)
        if scale <= 0.0:
            raise ValueError("For VarianceScaling initializer, the argument 'scale' must be greater "
                             f"than 0, but got {scale}.")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError("For VarianceScaling initializer, the argument 'mode' must be fan_in, "
                             f"fan_out or fan_avg, but got {mode}.")
        if distribution not in ("uniform", "truncated_normal", "untruncated_normal"):
            raise ValueError("For VarianceScaling initializer, the argument 'distribution' must be "
                             f"uniform, truncated_norm or untruncated_norm, but got {distribution}.")
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def _initialize(self, arr):
        fan_in, fan_out = _fans(arr.shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}
        scale = self.scale / max(1.0, fan[self.mode])
        if self.distribution == "untruncated_normal":
            _assign(arr, _normal(0, math.sqrt(scale), arr.shape))
        elif self.distribution == "truncated_normal":
            # MindSpore 2.10 compares with 'truncated_norm' here, so its 'truncated_normal' (the
            # default) falls through to the uniform branch; we draw the documented distribution.
            std = math.sqrt(scale) / 0.87962566103423978
            _assign(arr, _truncated_normal(-2 * std, 2 * std, 0, std, arr.shape))
        else:
            limit = math.sqrt(3.0 * scale)
            _assign(arr, _uniform(-limit, limit, arr.shape))


@_register()
class Uniform(Initializer):
    def __init__(self, scale: float = 0.07):
        super().__init__(scale=scale)
        self.scale = scale

    def _initialize(self, arr):
        _assign(arr, _uniform(-self.scale, self.scale, arr.shape))


@_register()
class Normal(Initializer):
    def __init__(self, sigma: float = 0.01, mean: float = 0.0):
        super().__init__(sigma=sigma, mean=mean)
        self.sigma, self.mean = sigma, mean

    def _initialize(self, arr):
        _assign(arr, _normal(self.mean, self.sigma, arr.shape))


@_register()
class TruncatedNormal(Initializer):
    def __init__(self, sigma: float = 0.01, mean: float = 0.0, a: float = -2.0, b: float = 2.0):
        super().__init__(sigma=sigma, mean=mean, a=a, b=b)
        self.sigma, self.mean, self.a, self.b = sigma, mean, a, b

    def _initialize(self, arr):
        _assign(arr, _truncated_normal(self.a, self.b, self.mean, self.sigma, arr.shape))


def initializer(init: Any, shape: Any = None, dtype: Any = float32) -> Tensor:
    """A Tensor of ``shape`` and ``dtype`` filled by ``init`` (MindSpore's function and checks).

    A Tensor ``init`` is returned as it is (its shape must equal ``shape`` when given)."""
    if not isinstance(init, (Tensor, numbers.Number, str, Initializer)):
        raise TypeError("For 'initializer', the type of the 'init' argument should be 'Tensor', "
                        f"'number', 'string' or 'initializer', but got {type(init)}.")
    if isinstance(init, Tensor):
        if shape is not None:  # MindSpore raises for shape=None too; we return init (see docs)
            given = shape if isinstance(shape, (tuple, list)) else [shape]
            if init.shape != tuple(given):
                raise ValueError("For 'initializer', the shape of the 'init' argument should be "
                                 "same as the argument 'shape', but got the 'init' shape "
                                 f"{list(init.shape)} and the 'shape' {given}.")
        return init
    if isinstance(shape, list):
        shape = tuple(shape)
    elif isinstance(shape, numbers.Number):
        shape = (shape,)
    for value in shape if shape is not None else ():
        if not isinstance(value, int) or value <= 0:
            raise ValueError("For 'initializer', the argument 'shape' is invalid, the value of "
                             f"'shape' must be positive integer, but got {shape}")
    if isinstance(init, str):
        klass = _ALIAS.get(init.lower())
        if klass is None:
            raise ValueError(f"For 'initializer', the class corresponding to '{init}' was not "
                             "found.")
        init = klass()
    elif isinstance(init, numbers.Number):
        init = Constant(init)
    t = _as_type(dtype)
    arr = np.zeros(tuple(shape or ()), dtype=np.float64 if t.kind == "float" else t.np_dtype)
    init(arr)
    out = Tensor(arr.astype(t.np_dtype, copy=False), dtype=t)
    object.__setattr__(out, "_init", True)  # init_data() accepts it, as MindSpore's lazy tensor
    return out


def _register_with_tensor() -> None:
    from .. import tensor as _tensor

    _tensor._INITIALIZERS = (initializer, Initializer)


_register_with_tensor()
