"""``Cell``: MindSpore's parameter container, with its naming rules and ``state_dict``.

A Cell registers ``Parameter``, ``ParameterTuple``, ``Cell`` and buffer attributes the way
MindSpore does:

* a Parameter assigned as an attribute is kept in the cell's own ordered table; if it has an
  automatic name (``Parameter#N``) it takes the attribute's name;
* a sub-Cell assigned as an attribute renames every parameter inside it to its attribute path
  (``conv1.weight``), so parameter names are the paths from the top cell
  (``insert_child_to_cell`` registers without renaming, as MindSpore's does);
* assigning a Tensor to an existing Parameter attribute replaces its data (``set_data``);
* ``parameters_and_names()`` yields the cell's own parameters first, then each sub-cell's,
  depth first, in assignment order, each parameter once;
* ``state_dict()`` maps every attribute path to its Parameter or persistent buffer (a shared
  Parameter appears under each path), and ``load_state_dict()`` gives each Parameter (the same
  object) a copy of its value cast to its dtype, returning ``(missing_keys, unexpected_keys)``.

Cells here hold parameters; they do not compute.  Run the maths in PyTorch (``save_checkpoint``
and ``load_param_into_net`` accept ``torch.nn.Module`` too) or subclass and define
``construct``.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..common.parameter import ParameterTuple
from ..tensor import Parameter, Tensor, bfloat16, float16, float32

__all__ = ["Cell"]


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns (MindSpore's and torch's named tuple)."""

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class Cell:
    """Base class of all cells: an ordered container of Parameters, buffers and sub-Cells."""

    def __init__(self, auto_prefix: bool = True, flags: Any = None):
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_cells", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
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
            self._tables()
            self.__dict__.pop(name, None)
            self.insert_param_to_cell(name, value)
        elif isinstance(value, ParameterTuple):
            self._tables()
            seen: set[int] = set()
            names: set[str] = set()
            for item in value:
                if id(item) in seen:
                    continue
                seen.add(id(item))
                if item.name.startswith("Parameter#"):  # MindSpore: "Parameter$<n>" per cell
                    n = self.__dict__.get("_auto_param_id", 0)
                    object.__setattr__(self, "_auto_param_id", n + 1)
                    item.name = f"Parameter${n}"
                if item.name in names:
                    raise ValueError(f"The value {value} , its name '{item.name}' already exists. "
                                     "Please set a unique name for the parameter.")
                names.add(item.name)
                self.insert_param_to_cell(item.name, item, check_name_contain_dot=False)
            object.__setattr__(self, name, value)
        elif isinstance(value, Cell):
            params, cells = self._tables()
            params.pop(name, None)
            self.__dict__.pop(name, None)
            if self._auto_prefix:
                value.update_parameters_name(name + ".")
            cells[name] = value
        else:
            self._set_plain(name, value)

    def _set_plain(self, name: str, value: Any) -> None:
        d = self.__dict__
        params = d.get("_params")
        if params is not None and name in params:
            if value is None:
                params[name] = None
            elif isinstance(value, Tensor) and params[name] is not None:
                params[name].set_data(value)
            else:
                raise TypeError(f"Parameter '{name}' already exists in network, can not assign "
                                f"this type: '{type(value)}' as a parameter.")
            return
        cells = d.get("_cells")
        if cells is not None and name in cells:
            if value is not None:
                raise TypeError(f"Sub cell '{name}' already exists in network, can not assign "
                                f"this type: '{type(value)}' as a cell.")
            cells[name] = None
            return
        buffers = d.get("_buffers")
        if buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"Buffer '{name}' already exists in network, can not assign "
                                f"this type: '{type(value)}' as a buffer.")
            buffers[name] = value
            return
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for table in ("_params", "_cells", "_buffers"):
            if name in d.get(table, ()):
                return d[table][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        params, cells = self._tables()
        buffers = self.__dict__["_buffers"]
        if name in params:
            del params[name]
        elif name in cells:
            del cells[name]
        elif name in buffers:
            del buffers[name]
            self.__dict__["_non_persistent_buffers_set"].discard(name)
        else:
            object.__delattr__(self, name)

    # registration helpers (MindSpore names)
    def insert_param_to_cell(
        self, param_name: str, param: Parameter | None, check_name_contain_dot: bool = True
    ) -> None:
        """Register ``param`` under ``param_name`` (MindSpore's checks and messages)."""
        if not param_name:
            raise KeyError("For 'insert_param_to_cell', the argument 'param_name' should not be None.")
        if check_name_contain_dot and "." in param_name:
            raise KeyError("For 'insert_param_to_cell', the argument 'param_name' should not "
                           "contain'.' ")
        if "_params" not in self.__dict__:
            raise AttributeError("For 'insert_param_to_cell', please call Cell.__init__() firstly.")
        params, cells = self._tables()
        if param_name not in params and (param_name in cells or param_name in self.__dict__
                                         or param_name in self.__dict__["_buffers"]
                                         or hasattr(type(self), param_name)):
            raise KeyError(f"For 'insert_param_to_cell', the {param_name} parameter already "
                           "exists in the network.Cannot insert another parameter with the same "
                           "name.")
        if not isinstance(param, Parameter) and param is not None:
            raise TypeError("For 'insert_param_to_cell', the argument 'param' must be 'Parameter' "
                            f"if not None, but got {type(param)}.")
        if param is not None and param.name.startswith("Parameter#"):
            param.name = param_name
        params[param_name] = param

    def insert_child_to_cell(self, child_name: str, child_cell: Cell | None) -> None:
        """Register ``child_cell`` under ``child_name`` (no renaming, as MindSpore)."""
        if not isinstance(child_name, str):
            raise TypeError("For 'insert_child_to_cell', the type of parameter 'child_name' must "
                            f"be str, but got {type(child_name)}.")
        if not child_name or "." in child_name:
            raise KeyError("For 'insert_child_to_cell', the parameter 'child_name' can not be "
                           "None and can not contain '.' ")
        _, cells = self._tables()
        if child_name not in cells and (child_name in self.__dict__["_params"]
                                        or child_name in self.__dict__["_buffers"]
                                        or hasattr(type(self), child_name)
                                        or child_name in self.__dict__):
            raise KeyError(f"For 'insert_child_to_cell', the {child_name} child cell already "
                           "exists in the network.Cannot insert another child cell with the same "
                           "name.")
        if not isinstance(child_cell, Cell) and child_cell is not None:
            raise TypeError("For 'insert_child_to_cell', the argument 'child_cell' must be "
                            f"'Cell' if not None, but got type {type(child_cell)}.")
        cells[child_name] = child_cell

    def update_parameters_name(self, prefix: str = "", recurse: bool = True) -> None:
        """Rename every parameter to ``prefix`` + its attribute path in this cell."""
        for path, param in self.parameters_and_names(expand=recurse):
            param.name = prefix + path

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a buffer: a Tensor that is state (``state_dict``) but not a Parameter."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Cell.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"buffer name should be a string.But got this type: {type(name)}")
        if "." in name:
            raise KeyError('buffer name can\'t contain "."')
        if name == "":
            raise KeyError('buffer name can\'t be empty string ""')
        buffers = self.__dict__["_buffers"]
        if hasattr(self, name) and name not in buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor)}' object to buffer '{name}' "
                            "(mindspore Tensor or None required)")
        buffers[name] = tensor
        if persistent:
            self.__dict__["_non_persistent_buffers_set"].discard(name)
        else:
            self.__dict__["_non_persistent_buffers_set"].add(name)

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        cells = self.cells_and_names(name_prefix=prefix) if recurse else [(prefix, self)]
        for path, cell in cells:
            for name, buf in cell.__dict__["_buffers"].items():
                if buf is None or (remove_duplicate and id(buf) in seen):
                    continue
                seen.add(id(buf))
                yield (f"{path}.{name}" if path else name), buf

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    # traversal
    def parameters_and_names(
        self, name_prefix: str = "", expand: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        cells = self.cells_and_names(name_prefix=name_prefix) if expand else [(name_prefix, self)]
        for path, cell in cells:
            for name, param in cell.__dict__["_params"].items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{path}.{name}" if path else name), param

    def cells_and_names(self, cells: Any = None, name_prefix: str = "") -> Iterator[tuple[str, Cell]]:
        """``(path, cell)`` for this cell and every sub-cell, depth first, each cell once."""
        seen: set[int] = set() if cells is None else set(cells)

        def walk(prefix: str, cell: Cell) -> Iterator[tuple[str, Cell]]:
            if id(cell) in seen:
                return
            seen.add(id(cell))
            yield prefix, cell
            for name, child in cell.__dict__["_cells"].items():
                if child is not None:
                    yield from walk(f"{prefix}.{name}" if prefix else name, child)

        yield from walk(name_prefix, self)

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

    def check_names(self) -> None:
        """Raise ``ValueError`` if two parameters share a name (MindSpore's check before saving)."""
        names: set[str] = set()
        for path, param in self.parameters_and_names():
            if param.name in names:
                raise ValueError(f"The value of {path} is {param}, its name '{param.name}' already "
                                 "exists. Please set a unique name for the parameter.")
            names.add(param.name)

    def apply(self, fn: Any) -> Cell:
        """Call ``fn`` on every sub-cell (children first) and then on this cell; returns self."""
        for cell in self.cells():
            if cell is not None:
                cell.apply(fn)
        fn(self)
        return self

    def init_parameters_data(self, auto_parallel_mode: bool = False) -> dict:
        return {p: p for p in self.get_parameters()}

    # state_dict (MindSpore 2.10's Cell.state_dict / load_state_dict)
    def state_dict(self, *args: Any, destination: Any = None, prefix: str = "",
                   keep_vars: bool = False) -> Any:
        """``{attribute path: Parameter | buffer}`` for this cell and its sub-cells (references,
        not copies); a Parameter reachable by two paths appears under both."""
        if args:
            destination = args[0] if destination is None else destination
            prefix = args[1] if len(args) > 1 and prefix == "" else prefix
            keep_vars = args[2] if len(args) > 2 and keep_vars is False else keep_vars
        if destination is not None and not isinstance(destination, dict):
            raise TypeError(f"The type of destination must be OrderedDict, but got {type(destination)}")
        if not isinstance(prefix, str):
            raise TypeError(f"The type of prefix must be string, but got {type(prefix)}")
        if not isinstance(keep_vars, bool):
            raise TypeError(f"The type of keep_vars must be bool, but got {type(keep_vars)}")
        if destination is None:
            destination = OrderedDict()
            destination._metadata = OrderedDict()  # type: ignore[attr-defined]
        if hasattr(destination, "_metadata"):
            destination._metadata[prefix[:-1]] = {}
        d = self.__dict__
        for name, param in d["_params"].items():
            if param is not None:
                destination[prefix + name] = param
        for name, buf in d["_buffers"].items():
            if buf is not None and name not in d["_non_persistent_buffers_set"]:
                destination[prefix + name] = buf
        for name, cell in d["_cells"].items():
            if cell is not None:
                cell.state_dict(destination=destination, prefix=prefix + name + ".",
                                keep_vars=keep_vars)
        return destination

    def _local_state(self) -> dict[str, Tensor]:
        d = self.__dict__
        local = {k: v for k, v in d["_params"].items() if v is not None}
        local.update((k, v) for k, v in d["_buffers"].items()
                     if v is not None and k not in d["_non_persistent_buffers_set"])
        return local

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> _IncompatibleKeys:
        """Copy values from ``state_dict`` into this cell's Parameters and buffers (the same
        objects, each given a copy cast to its dtype).

        Returns ``(missing_keys, unexpected_keys)``; with ``strict=True`` either list non-empty,
        a shape mismatch or a value that is not a Tensor raises ``RuntimeError`` listing all.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        missing: list[str] = []
        unexpected: list[str] = []
        errors: list[str] = []

        def load(cell: Cell, local_sd: dict[str, Any], prefix: str) -> None:
            local = cell._local_state()
            for name, param in local.items():
                key = prefix + name
                if key not in local_sd:
                    missing.append(key)  # MindSpore lists them whatever ``strict`` is
                    continue
                value = local_sd[key]
                if not isinstance(value, Tensor):
                    errors.append(f'While copying the parameter named "{key}", expected Tensor '
                                  "or Tensor-like object from checkpoint but received "
                                  f"{type(value)}")
                    continue
                if value.shape != param.shape:
                    errors.append(f"size mismatch for {key}: copying a param with shape "
                                  f"{value.shape} from checkpoint, the shape in current model is "
                                  f"{param.shape}.")
                    continue
                _assign(param, value)
            cells = cell.__dict__["_cells"]
            for key in local_sd:
                if key.startswith(prefix):
                    head = key[len(prefix):].split(".", 1)
                    if (len(head) > 1 and head[0] not in cells) or (
                            len(head) == 1 and head[0] not in local):
                        unexpected.append(key)
            for name, child in cells.items():
                if child is not None:
                    child_prefix = prefix + name + "."
                    load(child, {k: v for k, v in local_sd.items() if k.startswith(child_prefix)},
                         child_prefix)

        load(self, OrderedDict(state_dict), "")
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in unexpected)))
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in missing)))
        if errors:
            raise RuntimeError("Error(s) in loading state_dict for {}:\n\t{}".format(
                type(self).__name__, "\n\t".join(errors)))
        return _IncompatibleKeys(missing, unexpected)

    def to_float(self, dst_type: Any) -> Cell:
        """Record MindSpore's compute-precision flag on this cell and its sub-cells; Parameters
        keep their dtype (as in MindSpore, where ``to_float`` casts inputs, not weights)."""
        if dst_type not in (float16, float32, bfloat16):
            raise ValueError("For 'to_float', the argument 'dst_type' must be mstype.float32, "
                             "mstype.float16 or mstype.bfloat16, but got type: "
                             f"{type(dst_type)} and value: {dst_type}.")
        for _, cell in self.cells_and_names():
            object.__setattr__(cell, "compute_dtype", dst_type)
        return self

    def set_grad(self, requires_grad: bool = True) -> Cell:
        """Record the flag (mindckpt computes no gradients); returns self."""
        object.__setattr__(self, "requires_grad", requires_grad)
        return self

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

    def extend_repr(self) -> str:
        """This cell's own description in ``repr`` (overridden by layers), as MindSpore's."""
        return ""

    def __repr__(self) -> str:
        extra = self.extend_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({key}): {_addindent(repr(cell), 2)}"
                       for key, cell in self.__dict__["_cells"].items()]
        lines = extra_lines + child_lines
        text = type(self).__name__ + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                text += extra_lines[0]
            else:
                text += "\n  " + "\n  ".join(lines) + "\n"
        return text + ")"

    __str__ = __repr__


def _addindent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


def _assign(target: Tensor, value: Tensor) -> None:
    """Give ``target`` (same object) a copy of ``value`` cast to ``target``'s dtype: MindSpore's
    ``assign_value(Tensor(value.asnumpy(), dtype=target.dtype))``. The copy never aliases the
    state dict's tensors, and arrays shared with the caller are never written through."""
    object.__setattr__(target, "_array",
                       np.array(value.asnumpy(), dtype=target.asnumpy().dtype, copy=True))
