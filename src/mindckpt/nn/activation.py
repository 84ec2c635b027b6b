"""MindSpore's activation and dropout cells, as parameter containers.

They hold no parameters (``PReLU``/``PReLUExt`` hold ``w``/``weight``), so a checkpoint sees
only their place in the cell tree (``cells_and_names``) and their ``repr``; both are
MindSpore's, as is ``get_activation(name)``, which ``Dense(..., activation="relu")`` uses.
``ReLU`` computes in numpy; the others raise ``NotImplementedError`` when called: mindckpt runs
no maths (run the model in PyTorch).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Parameter, Tensor, float32
from .cell import Cell

__all__ = [
    "ReLU", "ReLU6", "Tanh", "Sigmoid", "GELU", "FastGelu", "ELU", "Softmax", "LogSoftmax",
    "SiLU", "HSwish", "HSigmoid", "LeakyReLU", "Softsign", "Mish", "Softmin", "LogSigmoid",
    "Hardtanh", "HShrink", "SoftShrink", "Tanhshrink", "RReLU", "Softmax2d", "PReLU",
    "Dropout", "get_activation",
]  # fmt: skip


class _NoMath(Cell):
    """A cell whose arguments only matter to the maths, which mindckpt does not run."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()
        self._args = (args, kwargs)

    def construct(self, *inputs: Any) -> Any:
        raise NotImplementedError(
            f"mindckpt.nn.{type(self).__name__} holds no maths; run the model in PyTorch"
        )


class ReLU(Cell):
    def construct(self, x: Any) -> np.ndarray:
        return np.maximum(np.asarray(x), 0)


class ReLU6(_NoMath): ...
class Tanh(_NoMath): ...
class Sigmoid(_NoMath): ...
class GELU(_NoMath): ...
class FastGelu(_NoMath): ...
class ELU(_NoMath): ...
class Softmax(_NoMath): ...
class LogSoftmax(_NoMath): ...
class LogSoftmaxExt(_NoMath): ...
class SiLU(_NoMath): ...
class HSwish(_NoMath): ...
class HSigmoid(_NoMath): ...
class LeakyReLU(_NoMath): ...
class Softsign(_NoMath): ...
class Mish(_NoMath): ...
class Softmin(_NoMath): ...
class LogSigmoid(_NoMath): ...
class Hardtanh(_NoMath): ...
class HShrink(_NoMath): ...
class SoftShrink(_NoMath): ...
class Tanhshrink(_NoMath): ...
class RReLU(_NoMath): ...
class Softmax2d(_NoMath): ...


class PReLU(_NoMath):
    """``nn.PReLU(channel=1, w=0.25)``: parameter ``w`` of shape ``(channel,)``."""

    def __init__(self, channel: int = 1, w: Any = 0.25):
        super().__init__()
        if isinstance(w, (float, int)) and not isinstance(w, bool):
            data = Tensor(np.full((channel,), w, np.float32))
        elif isinstance(w, Tensor):
            data = Tensor(np.array(w.asnumpy(), dtype=np.float32).reshape(-1))
        else:
            raise TypeError(f"For 'PReLU', the 'w' only supported float, list and tensor, but "
                            f"got {type(w).__name__}.")
        self.w = Parameter(data, name="a")  # MindSpore names it "a"; the parent renames it


class PReLUExt(_NoMath):
    """``nn.PReLUExt(num_parameters=1, init=0.25)``: parameter ``weight``."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, dtype: Any = None):
        super().__init__()
        self.weight = Parameter(Tensor(np.full((num_parameters,), init), dtype=dtype or float32),
                                name="weight")


class Dropout(_NoMath):
    """``nn.Dropout(keep_prob=0.5, p=None)``: no parameters."""

    def __init__(self, keep_prob: float = 0.5, p: float | None = None, dtype: Any = float32):
        super().__init__()
        self.keep_prob, self.p = keep_prob, p

    def extend_repr(self) -> str:
        return f"keep_prob={self.keep_prob}" if self.p is None else f"p={self.p}"


_ACTIVATIONS: dict[str, type[Cell]] = {
    "softmin": Softmin, "softmax": Softmax, "softmax2d": Softmax2d, "logsoftmax": LogSoftmax,
    "logsoftmaxExt": LogSoftmaxExt, "relu": ReLU, "relu6": ReLU6, "rrelu": RReLU, "silu": SiLU,
    "tanh": Tanh, "tanhshrink": Tanhshrink, "hardtanh": Hardtanh, "gelu": GELU,
    "fast_gelu": FastGelu, "elu": ELU, "sigmoid": Sigmoid, "softsign": Softsign, "prelu": PReLU,
    "preluExt": PReLUExt, "leakyrelu": LeakyReLU, "hswish": HSwish, "hsigmoid": HSigmoid,
    "logsigmoid": LogSigmoid, "softshrink": SoftShrink, "hshrink": HShrink, "mish": Mish,
}  # fmt: skip
_NAMES = ["softmin", "softmax", "softmax2d", "logsoftmax", "logsoftmaxExt", "relu", "relu6",
          "rrelu", "silu", "tanh", "tanhshrink", "hardtanh", "gelu", "fast_gelu", "elu",
          "sigmoid", "softsign", "prelu", "preluExt", "leakyrelu", "hswish", "hsigmoid",
          "logsigmoid", "softshrink", "hshrink", "threshold", "mish"]  # MindSpore's message order


def get_activation(name: str, prim_name: str | None = None) -> Cell | None:
    """The activation cell MindSpore's ``get_activation(name)`` makes (``None`` for None)."""
    if name is None:
        return None
    if name == "threshold":
        raise TypeError("Threshold.__init__() missing 2 required positional arguments: "
                        "'threshold' and 'value'")
    klass = _ACTIVATIONS.get(name)
    if klass is None:
        raise KeyError(f"The 'name' must be in {_NAMES}, but got {name}.")
    return klass()
