"""Parameter-holding layers with MindSpore 2.10's parameter names, shapes, dtypes, flags and
initial-value distributions (checked against real MindSpore: tests/compat/golden/).

Defaults as MindSpore's: ``Dense``/``Conv1d``/``Conv2d`` weights are ``HeUniform(sqrt(5))``
(uniform in +-1/sqrt(fan_in)) and biases uniform in +-1/sqrt(fan_in); ``BatchNorm`` starts at
``gamma=1, beta=0, moving_mean=0, moving_variance=1`` with the moving statistics frozen
(``requires_grad=False``) and named ``mean``/``variance`` until a parent cell renames them to
their attribute paths; ``Embedding`` draws ``Normal(0.01)`` and zeroes ``padding_idx``. The
values are random like MindSpore's, not equal to them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..common.initializer import HeUniform, Uniform, initializer
from ..tensor import Parameter, Tensor, _as_type, float32
from .activation import get_activation
from .cell import Cell

__all__ = ["Dense", "Conv1d", "Conv2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Embedding",
           "Flatten", "MaxPool2d"]


def _init(init: Any, shape: tuple[int, ...], dtype: Any) -> Tensor:
    """A layer's initial value from MindSpore's ``weight_init``/``bias_init`` forms."""
    return initializer(init, shape, dtype if dtype is not None else float32)


def _default_weight_init(init: Any) -> Any:
    return HeUniform(math.sqrt(5)) if init is None else init  # MindSpore's default


def _fan_bound(fan_in: int) -> float:
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def _pair(x: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(x, int):
        return x, x
    if isinstance(x, (tuple, list)) and len(x) == 2 and all(isinstance(v, int) for v in x):
        return int(x[0]), int(x[1])
    raise TypeError("When expanding an int number to tuple, input type must be integer or "
                    f"tuple[int], but got {type(x)}")


def _check_group(in_channels: int, out_channels: int, group: int) -> None:
    if group <= 0 or in_channels % group or out_channels % group:
        raise ValueError("The argument 'group' should be divisible by 'in_channels' and "
                         f"'out_channels', but got group:{group}, in_channels:{in_channels}, "
                         f"out_channels:{out_channels}.")


def _check_channels(value: Any, name: str, cls: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"For '{cls}', the '{name}' must be int, but got '{type(value).__name__}'")
    if value <= 0:
        raise ValueError(f"For '{cls}', the '{name}' must be int and must > 0, but got "
                         f"'{value}' with type 'int'.")


class Dense(Cell):
    """``nn.Dense(in_channels, out_channels)``: ``weight`` (out, in) and ``bias`` (out,)."""

    def __init__(self, in_channels: int, out_channels: int, weight_init: Any = None,
                 bias_init: Any = None, has_bias: bool = True, activation: Any = None,
                 dtype: Any = float32):
        super().__init__()
        _check_channels(in_channels, "in_channels", "Dense")
        _check_channels(out_channels, "out_channels", "Dense")
        self.in_channels, self.out_channels = in_channels, out_channels
        if isinstance(activation, str):
            activation = get_activation(activation)
        elif activation is not None and not isinstance(activation, Cell):
            raise TypeError("For 'Dense', the 'activation' must be str or Cell or Primitive, but "
                            f"got {type(activation).__name__}.")
        self.activation = activation  # a Cell: registered as the child "activation"
        self.activation_flag = activation is not None
        self.weight = Parameter(_init(_default_weight_init(weight_init),
                                      (out_channels, in_channels), dtype), name="weight")
        self.has_bias = has_bias
        if has_bias:
            if bias_init is None:
                bias_init = Uniform(_fan_bound(in_channels))
            self.bias = Parameter(_init(bias_init, (out_channels,), dtype), name="bias")

    def extend_repr(self) -> str:
        s = f"input_channels={self.in_channels}, output_channels={self.out_channels}"
        if self.has_bias:
            s += f", has_bias={self.has_bias}"
        if self.activation_flag:
            s += f", activation={self.activation}"
        return s

    def construct(self, x: Any) -> np.ndarray:
        y = np.asarray(x) @ self.weight.asnumpy().T
        return y + self.bias.asnumpy() if self.has_bias else y


class _Conv(Cell):
    def _make(self, in_channels: int, out_channels: int, kernel: tuple[int, int], group: int,
              has_bias: bool, weight_init: Any, bias_init: Any, dtype: Any) -> None:
        _check_group(in_channels, out_channels, group)
        shape = (out_channels, in_channels // group, *kernel)
        self.weight_init = _default_weight_init(weight_init)
        self.weight = Parameter(_init(self.weight_init, shape, dtype), name="weight")
        self.has_bias = has_bias
        self.bias_init = bias_init
        if has_bias:
            if bias_init is None:
                self.bias_init = Uniform(_fan_bound((in_channels // group) * kernel[0] * kernel[1]))
            self.bias = Parameter(_init(self.bias_init, (out_channels,), dtype), name="bias")

    def extend_repr(self) -> str:
        return (f"input_channels={self.in_channels}, output_channels={self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"pad_mode={self.pad_mode}, padding={self.padding}, dilation={self.dilation}, "
                f"group={self.group}, has_bias={self.has_bias}, weight_init={self.weight_init}, "
                f"bias_init={self.bias_init}, format={self.data_format}")


class Conv1d(_Conv):
    """``nn.Conv1d``: ``weight`` (out, in/group, 1, kernel_size) as MindSpore stores it,
    ``bias`` (out,) when ``has_bias``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 pad_mode: str = "same", padding: int = 0, dilation: int = 1, group: int = 1,
                 has_bias: bool = False, weight_init: Any = None, bias_init: Any = None,
                 dtype: Any = float32):
        super().__init__()
        if not isinstance(kernel_size, int):
            raise TypeError("For 'Conv1d', the type of 'kernel_size' should be 'int', but got "
                            f"type '{type(kernel_size).__name__}'.")
        self.in_channels, self.out_channels = in_channels, out_channels
        # stored as MindSpore's Conv1d stores them (a 2-D convolution over (1, width))
        self.kernel_size, self.stride, self.pad_mode = (1, kernel_size), (1, stride), pad_mode
        self.padding, self.dilation, self.group = (0, 0, padding, padding), (1, dilation), group
        self.data_format = "NCHW"
        self._make(in_channels, out_channels, (1, kernel_size), group, has_bias, weight_init,
                   bias_init, dtype)


class Conv2d(_Conv):
    """``nn.Conv2d``: ``weight`` (out, in/group, kh, kw), ``bias`` (out,) when ``has_bias``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int = 1, pad_mode: str = "same", padding: int = 0, dilation: int = 1,
                 group: int = 1, has_bias: bool = False, weight_init: Any = None,
                 bias_init: Any = None, data_format: str = "NCHW", dtype: Any = float32):
        super().__init__()
        kernel = _pair(kernel_size)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.pad_mode = kernel, _pair(stride), pad_mode
        self.padding, self.dilation, self.group = padding, _pair(dilation), group
        self.data_format = data_format
        self._make(in_channels, out_channels, kernel, group, has_bias, weight_init, bias_init,
                   dtype)


class _BatchNorm(Cell):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.9,
                 affine: bool = True, gamma_init: Any = "ones", beta_init: Any = "zeros",
                 moving_mean_init: Any = "zeros", moving_var_init: Any = "ones",
                 use_batch_statistics: Any = None, data_format: str = "NCHW",
                 dtype: Any = float32):
        super().__init__()
        cls = type(self).__name__
        if not isinstance(num_features, int) or isinstance(num_features, bool):
            raise TypeError(f"For '{cls}', the type of 'num_features' should be 'int', but got "
                            f"type '{type(num_features).__name__}'.")
        if num_features < 1:
            raise ValueError(f"For '{cls}', the 'num_features' must be at least 1, but got "
                             f"{num_features}.")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"For '{cls}', the 'momentum' must be a number in "
                             f"range [0, 1], but got {momentum}.")
        # MindSpore keeps 1 - momentum (the weight of the new batch statistics) in .momentum
        self.num_features, self.eps, self.momentum = num_features, eps, 1.0 - momentum
        self.affine, self.use_batch_statistics = affine, use_batch_statistics
        self.data_format = data_format
        shape = (num_features,)
        self.moving_mean = Parameter(initializer(moving_mean_init, shape, dtype), name="mean",
                                     requires_grad=False)
        self.moving_variance = Parameter(initializer(moving_var_init, shape, dtype),
                                         name="variance", requires_grad=False)
        self.gamma = Parameter(initializer(gamma_init, shape, dtype), name="gamma",
                               requires_grad=affine)
        self.beta = Parameter(initializer(beta_init, shape, dtype), name="beta",
                              requires_grad=affine)

    def extend_repr(self) -> str:
        return (f"num_features={self.num_features}, eps={self.eps}, "
                f"momentum={1.0 - self.momentum}, gamma={self.gamma}, beta={self.beta}, "
                f"moving_mean={self.moving_mean}, moving_variance={self.moving_variance}")


class BatchNorm1d(_BatchNorm):
    """``nn.BatchNorm1d``: ``moving_mean``, ``moving_variance``, ``gamma``, ``beta``."""


class BatchNorm2d(_BatchNorm):
    """``nn.BatchNorm2d``: ``moving_mean``, ``moving_variance``, ``gamma``, ``beta``."""


class LayerNorm(Cell):
    """``nn.LayerNorm(normalized_shape)``: ``gamma`` and ``beta`` of ``normalized_shape``."""

    def __init__(self, normalized_shape: tuple[int, ...] | list[int], begin_norm_axis: int = -1,
                 begin_params_axis: int = -1, gamma_init: Any = "ones", beta_init: Any = "zeros",
                 epsilon: float = 1e-7, dtype: Any = float32):
        super().__init__()
        if not isinstance(normalized_shape, (tuple, list)):
            raise TypeError("For 'LayerNorm', the type of 'normalized_shape' must be tuple[int] "
                            f"or list[int], but got {normalized_shape} and the type is "
                            f"{type(normalized_shape)}.")
        shape = tuple(int(n) for n in normalized_shape)
        self.normalized_shape = normalized_shape
        self.begin_norm_axis, self.begin_params_axis = begin_norm_axis, begin_params_axis
        self.epsilon = epsilon
        self.gamma = Parameter(initializer(gamma_init, shape, dtype), name="gamma")
        self.beta = Parameter(initializer(beta_init, shape, dtype), name="beta")

    def extend_repr(self) -> str:
        # MindSpore 2.10 prints "gamma" without "=": kept, so printed models compare equal
        return (f"normalized_shape={self.normalized_shape}, "
                f"begin_norm_axis={self.begin_norm_axis}, "
                f"begin_params_axis={self.begin_params_axis}, gamma{self.gamma}, beta={self.beta}")


class Embedding(Cell):
    """``nn.Embedding(vocab_size, embedding_size)``: ``embedding_table`` (vocab, size)."""

    def __init__(self, vocab_size: int, embedding_size: int, use_one_hot: bool = False,
                 embedding_table: Any = "normal", dtype: Any = float32,
                 padding_idx: int | None = None):
        super().__init__()
        self.vocab_size, self.embedding_size = vocab_size, embedding_size
        self.use_one_hot, self.padding_idx = use_one_hot, padding_idx
        table = initializer(embedding_table, (vocab_size, embedding_size), dtype)
        if padding_idx is not None:
            if not 0 <= padding_idx < vocab_size:
                raise ValueError(f"For 'Embedding', the 'padding_idx' must be in range of "
                                 f"[0, {vocab_size}), but got {padding_idx} with type "
                                 f"'{type(padding_idx).__name__}'.")
            arr = np.array(table.asnumpy())
            arr[padding_idx] = 0
            table = Tensor(arr, dtype=_as_type(table.dtype))
        self.embedding_table = Parameter(table, name="embedding_table")
        self.dtype = _as_type(dtype)

    def extend_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, embedding_size={self.embedding_size}, "
                f"use_one_hot={self.use_one_hot}, embedding_table={self.embedding_table}, "
                f"dtype={self.dtype}, padding_idx={self.padding_idx}")


class Flatten(Cell):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def construct(self, x: Any) -> np.ndarray:
        a = np.asarray(x)
        start = self.start_dim % a.ndim
        end = self.end_dim % a.ndim
        return a.reshape(*a.shape[:start], -1, *a.shape[end + 1:])


class MaxPool2d(Cell):
    def __init__(self, kernel_size: int = 1, stride: int = 1, pad_mode: str = "valid",
                 padding: int = 0, dilation: int = 1, return_indices: bool = False,
                 ceil_mode: bool = False, data_format: str = "NCHW"):
        super().__init__()
        self.kernel_size, self.stride, self.pad_mode = kernel_size, stride, pad_mode.upper()

    def extend_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, pad_mode={self.pad_mode}"
