"""``mindspore.common.initializer`` for parameter containers: initial values drawn with numpy.

``initializer(init, shape, dtype)`` takes an ``Initializer`` instance, one of MindSpore's names
(``"normal"``, ``"zeros"``, ``"he_uniform"`` ...), a number, a numpy array or a Tensor, so that
model definitions written for MindSpore (``nn.Dense(400, 120, weight_init=Normal(0.02))``)
build unchanged.  The values are random like MindSpore's, not equal to them: load a checkpoint
to get trained values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..tensor import Tensor, _as_type, float32

__all__ = [
    "Initializer", "initializer", "Normal", "TruncatedNormal", "Uniform", "Zero", "One",
    "Constant", "HeUniform", "HeNormal", "XavierUniform", "XavierNormal",
]

_rng = np.random.default_rng(0)


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        n = shape[0] if shape else 1
        return n, n
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


class Initializer:
    """Base class: ``init(shape)`` returns a float64 numpy array of that shape."""

    def __call__(self, shape: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not define __call__")


class Normal(Initializer):
    def __init__(self, sigma: float = 0.01, mean: float = 0.0):
        self.sigma, self.mean = sigma, mean

    def __call__(self, shape):
        return _rng.normal(self.mean, self.sigma, size=shape)


class TruncatedNormal(Initializer):
    def __init__(self, sigma: float = 0.01, mean: float = 0.0, a: float = -2.0, b: float = 2.0):
        self.sigma, self.mean, self.a, self.b = sigma, mean, a, b

    def __call__(self, shape):
        return np.clip(_rng.normal(self.mean, self.sigma, size=shape), self.a, self.b)


class Uniform(Initializer):
    def __init__(self, scale: float = 0.07):
        self.scale = scale

    def __call__(self, shape):
        return _rng.uniform(-self.scale, self.scale, size=shape)


class Constant(Initializer):
    def __init__(self, value: float):
        self.value = value

    def __call__(self, shape):
        return np.full(shape, self.value, dtype=np.float64)


class Zero(Constant):
    def __init__(self):
        super().__init__(0.0)


class One(Constant):
    def __init__(self):
        super().__init__(1.0)


class HeUniform(Initializer):
    def __init__(self, negative_slope: float = 0.0, mode: str = "fan_in",
                 nonlinearity: str = "leaky_relu"):
        self.slope, self.mode = negative_slope, mode

    def __call__(self, shape):
        fan = _fans(shape)[0 if self.mode == "fan_in" else 1]
        bound = math.sqrt(6.0 / ((1 + self.slope**2) * max(fan, 1)))
        return _rng.uniform(-bound, bound, size=shape)


class HeNormal(HeUniform):
    def __call__(self, shape):
        fan = _fans(shape)[0 if self.mode == "fan_in" else 1]
        return _rng.normal(0.0, math.sqrt(2.0 / ((1 + self.slope**2) * max(fan, 1))), size=shape)


class XavierUniform(Initializer):
    def __init__(self, gain: float = 1.0):
        self.gain = gain

    def __call__(self, shape):
        fan_in, fan_out = _fans(shape)
        bound = self.gain * math.sqrt(6.0 / max(fan_in + fan_out, 1))
        return _rng.uniform(-bound, bound, size=shape)


class XavierNormal(XavierUniform):
    def __call__(self, shape):
        fan_in, fan_out = _fans(shape)
        return _rng.normal(0.0, self.gain * math.sqrt(2.0 / max(fan_in + fan_out, 1)), size=shape)


_BY_NAME = {
    "normal": Normal, "truncatednormal": TruncatedNormal, "uniform": Uniform, "zeros": Zero,
    "ones": One, "he_uniform": HeUniform, "heuniform": HeUniform, "he_normal": HeNormal,
    "henormal": HeNormal, "xavier_uniform": XavierUniform, "xavieruniform": XavierUniform,
    "xavier_normal": XavierNormal, "xaviernormal": XavierNormal,
}


def initializer(init: Any, shape: Any = None, dtype: Any = float32) -> Tensor:
    """A Tensor of ``shape`` and ``dtype`` filled by ``init`` (MindSpore's function)."""
    t = _as_type(dtype)
    if isinstance(init, Tensor):
        return Tensor(init.asnumpy(), dtype=t)
    if isinstance(init, np.ndarray):
        return Tensor(init, dtype=t)
    shape = (shape,) if isinstance(shape, int) else tuple(shape or ())
    if isinstance(init, str):
        klass = _BY_NAME.get(init.lower())
        if klass is None:
            raise ValueError(f"For 'initializer', the init name {init!r} is not supported; use "
                             f"one of {sorted(_BY_NAME)}")
        init = klass()
    elif isinstance(init, (bool, int, float)):
        init = Constant(float(init))
    if not isinstance(init, Initializer):
        raise TypeError(f"For 'initializer', 'init' must be a Tensor, str, Initializer or number, "
                        f"but got {type(init)}.")
    return Tensor(np.asarray(init(shape)).astype(t.np_dtype))
