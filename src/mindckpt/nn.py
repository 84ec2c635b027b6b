"""``mindckpt.nn``: a MindSpore-like ``Cell`` parameter container and a few layers.

A Cell registers ``Parameter`` and ``Cell`` attributes the way MindSpore does:

* a Parameter assigned as an attribute is kept in the cell's own ordered table; if it has an
  automatic name (``Parameter#N``) it takes the attribute's name;
* a sub-Cell assigned as an attribute renames every parameter inside it to its attribute path
  (``conv1.weight``), so parameter names are the paths from the top cell;
* ``parameters_and_names()`` yields the cell's own parameters first, then each sub-cell's,
  depth first, in assignment order, each parameter once.

Cells here hold parameters; they do not compute.  Run the maths in PyTorch (``save_checkpoint``
and ``load_param_into_net`` accept ``torch.nn.Module`` too) or subclass and define
``construct``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np

from .common.initializer import Uniform, initializer
from .tensor import Parameter, Tensor

__all__ = ["Cell", "Dense", "Conv2d", "ReLU", "Flatten", "MaxPool2d"]

def _init(init: Any, shape: tuple[int, ...], bound: float, dtype: Any) -> Tensor:
    """A layer's initial value: MindSpore's ``weight_init``/``bias_init`` forms, or uniform."""
    return initializer(init if init is not None else Uniform(bound), shape,
                       dtype if dtype is not None else np.float32)


class Cell:
    """Base class of all cells: an ordered container of Parameters and sub-Cells."""

    def __init__(self, auto_prefix: bool = True, flags: Any = None):
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_cells", OrderedDict())
        object.__setattr__(self, "_auto_prefix", auto_prefix)
        object.__setattr__(self, "training", False)

    def _tables(self) -> tuple[OrderedDict, OrderedDict]:
        try:
            return self.__dict__["_params"], self.__dict__["_cells"]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__}.__init__ must call super().__init__() before "
                "assigning Parameters or Cells"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Parameter):
            params, cells = self._tables()
            if value.name.startswith("Parameter#"):
                value.name = name
            cells.pop(name, None)
            self.__dict__.pop(name, None)
            params[name] = value
        elif isinstance(value, Cell):
            params, cells = self._tables()
            params.pop(name, None)
            self.__dict__.pop(name, None)
            cells[name] = value
            if self._auto_prefix:
                value.update_parameters_name(name + ".")
        else:
            d = self.__dict__
            if name in d.get("_params", ()) and value is None:
                d["_params"].pop(name)
            if name in d.get("_cells", ()) and value is None:
                d["_cells"].pop(name)
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        if name in d.get("_params", ()):
            return d["_params"][name]
        if name in d.get("_cells", ()):
            return d["_cells"][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        params, cells = self._tables()
        if name in params:
            del params[name]
        elif name in cells:
            del cells[name]
        else:
            object.__delattr__(self, name)

    # registration helpers (MindSpore names)
    def insert_param_to_cell(
        self, param_name: str, param: Parameter, check_name_contain_dot: bool = True
    ) -> None:
        if not isinstance(param_name, str) or not param_name:
            raise KeyError(f"The name of parameter should be a non-empty str, but got {param_name!r}.")
        if check_name_contain_dot and "." in param_name:
            raise KeyError("The name of parameter should not contain \".\"")
        if not isinstance(param, Parameter) and param is not None:
            raise TypeError(
                "For 'insert_param_to_cell', the argument 'param' should be Parameter, "
                f"but got {type(param)}."
            )
        setattr(self, param_name, param)

    def insert_child_to_cell(self, child_name: str, child_cell: Cell) -> None:
        if not isinstance(child_cell, Cell):
            raise TypeError(f"The type of child_cell should be Cell, but got {type(child_cell)}.")
        setattr(self, child_name, child_cell)

    def update_parameters_name(self, prefix: str = "", recurse: bool = True) -> None:
        """Rename every parameter to ``prefix`` + its attribute path in this cell."""
        for path, param in self.parameters_and_names():
            param.name = prefix + path

    # traversal
    def parameters_and_names(
        self, name_prefix: str = "", expand: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        for path, cell in self.cells_and_names(name_prefix) if expand else [(name_prefix, self)]:
            for name, param in cell.__dict__["_params"].items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{path}.{name}" if path else name), param

    def cells_and_names(self, cell_name: str = "") -> Iterator[tuple[str, Cell]]:
        seen: set[int] = set()

        def walk(prefix: str, cell: Cell) -> Iterator[tuple[str, Cell]]:
            if id(cell) in seen:
                return
            seen.add(id(cell))
            yield prefix, cell
            for name, child in cell.__dict__["_cells"].items():
                if child is not None:
                    yield from walk(f"{prefix}.{name}" if prefix else name, child)

        yield from walk(cell_name, self)

    def cells(self) -> list[Cell]:
        return list(self.__dict__["_cells"].values())

    def name_cells(self) -> OrderedDict:
        return OrderedDict(self.__dict__["_cells"])

    def get_parameters(self, expand: bool = True) -> Iterator[Parameter]:
        for _, param in self.parameters_and_names(expand=expand):
            yield param

    def trainable_params(self, recurse: bool = True) -> list[Parameter]:
        return [p for p in self.get_parameters(expand=recurse) if p.requires_grad]

    def untrainable_params(self, recurse: bool = True) -> list[Parameter]:
        return [p for p in self.get_parameters(expand=recurse) if not p.requires_grad]

    def parameters_dict(self, recurse: bool = True) -> OrderedDict:
        return OrderedDict((p.name, p) for p in self.get_parameters(expand=recurse))

    def init_parameters_data(self, auto_parallel_mode: bool = False) -> dict:
        return {p: p for p in self.get_parameters()}

    def set_train(self, mode: bool = True) -> Cell:
        for _, cell in self.cells_and_names():
            object.__setattr__(cell, "training", mode)
        return self

    def construct(self, *inputs: Any) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} is a parameter container in mindckpt and does not compute; "
            "define construct() in a subclass, or run the model in PyTorch"
        )

    def __call__(self, *inputs: Any, **kwargs: Any) -> Any:
        return self.construct(*inputs, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}<>"


class Dense(Cell):
    """``nn.Dense(in_channels, out_channels)``: ``weight`` (out, in) and ``bias`` (out,)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        weight_init: Any = None,
        bias_init: Any = None,
        has_bias: bool = True,
        activation: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        bound = 1.0 / math.sqrt(in_channels) if in_channels else 0.0
        self.weight = Parameter(_init(weight_init, (out_channels, in_channels), bound, dtype),
                                name="weight")
        self.has_bias = has_bias
        if has_bias:
            self.bias = Parameter(_init(bias_init, (out_channels,), bound, dtype), name="bias")

    def construct(self, x: Any) -> np.ndarray:
        y = np.asarray(x) @ self.weight.asnumpy().T
        return y + self.bias.asnumpy() if self.has_bias else y


class Conv2d(Cell):
    """``nn.Conv2d``: ``weight`` (out, in/group, kh, kw), ``bias`` (out,) when ``has_bias``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        pad_mode: str = "same",
        padding: int = 0,
        dilation: int = 1,
        group: int = 1,
        has_bias: bool = False,
        weight_init: Any = None,
        bias_init: Any = None,
        data_format: str = "NCHW",
        dtype: Any = None,
    ):
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.pad_mode = (kh, kw), stride, pad_mode
        shape = (out_channels, in_channels // group, kh, kw)
        bound = 1.0 / math.sqrt((in_channels // group) * kh * kw)
        self.weight = Parameter(_init(weight_init, shape, bound, dtype), name="weight")
        self.has_bias = has_bias
        if has_bias:
            self.bias = Parameter(_init(bias_init, (out_channels,), bound, dtype), name="bias")


class ReLU(Cell):
    def construct(self, x: Any) -> np.ndarray:
        return np.maximum(np.asarray(x), 0)


class Flatten(Cell):
    def construct(self, x: Any) -> np.ndarray:
        a = np.asarray(x)
        return a.reshape(a.shape[0], -1)


class MaxPool2d(Cell):
    def __init__(self, kernel_size: int = 1, stride: int = 1, pad_mode: str = "valid"):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
