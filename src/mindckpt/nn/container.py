"""``SequentialCell`` and ``CellList``: MindSpore's containers and their parameter naming.

Children are keyed ``"0"``, ``"1"`` ... (or the ``OrderedDict`` keys given to
``SequentialCell``); each child's parameters are renamed ``<prefix><key>.<path>``, and
``insert``/``__delitem__`` renumber the later children's parameters, as MindSpore does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from .cell import Cell

__all__ = ["SequentialCell", "CellList"]


def _valid_index(cell_num: int, index: Any, op_name: str) -> int:
    if not isinstance(index, int):
        raise TypeError(f"For '{op_name}', the type of 'index' must be int, but got "
                        f"{type(index).__name__}.")
    if not -cell_num <= index < cell_num:
        raise IndexError(f"For '{op_name}', the value of 'index' must be a number in range "
                         f"[{-cell_num}, {cell_num}), but got {index}.")
    return index % cell_num


def _valid_insert_index(cell_num: int, index: Any, op_name: str) -> int:
    if not isinstance(index, int):
        raise TypeError(f"For '{op_name}', the type of 'index' must be int, but got "
                        f"{type(index).__name__}.")
    if not -cell_num <= index <= cell_num:
        raise IndexError(f"For '{op_name}', the value of 'index' must be a number in range "
                         f"[{-cell_num}, {cell_num}], but got {index}.")
    return index % cell_num if (cell_num != 0 and index != cell_num) else index


def _valid_cell(cell: Any, op_name: str) -> bool:
    if isinstance(cell, Cell):
        return True
    raise TypeError(f"For '{op_name}', each cell must be subclass of Cell, but got "
                    f"{type(cell).__name__}.")


def _prefix_and_index(cells: OrderedDict) -> tuple[str, int]:
    """Where the container's key sits in its parameters' names (MindSpore's rule)."""
    first = second = None
    first_key = second_key = None
    for key, cell in cells.items():
        param = next((p for _, p in cell.parameters_and_names()), None)
        if param is None:
            continue
        if first is None:
            first, first_key = param, key
            continue
        second, second_key = param, key
        break
    if first is None:
        return "", 0
    prefix, index = "", 0
    parts = first.name.split(".")
    for idx, name in enumerate(parts):
        if name == first_key:
            prefix = ".".join(parts[:idx])
            prefix = prefix + "." if prefix else prefix
            index = idx
            if second is not None and second.name.split(".")[idx] == second_key:
                break
    return prefix, index


def _renumber(cell: Cell, prefix: str, idx: int, key_index: int) -> None:
    for _, param in cell.parameters_and_names():
        param.name = prefix + str(idx) + "." + ".".join(param.name.split(".")[key_index + 1:])


class SequentialCell(Cell):
    """``nn.SequentialCell(cells)``: a list, an ``OrderedDict`` or Cells as arguments."""

    def __init__(self, *args: Any):
        super().__init__()
        object.__setattr__(self, "_is_dynamic_name", [])
        cells = self.__dict__["_cells"]
        if len(args) == 1 and not isinstance(args[0], Cell):
            arg = args[0]
            if isinstance(arg, list):
                items = [(str(i), c) for i, c in enumerate(arg)]
                dynamic = True
            elif isinstance(arg, OrderedDict):
                items = list(arg.items())
                dynamic = False
            else:
                raise TypeError(f"For '{type(self).__name__}', the 'args[0]' must be Cell, list "
                                f"or orderedDict, but got {type(arg).__name__}")
        else:
            items = [(str(i), c) for i, c in enumerate(args)]
            dynamic = True
        for name, cell in items:
            self.insert_child_to_cell(name, cell)
            cell.update_parameters_name(name + ".")
            self._is_dynamic_name.append(dynamic)
        self.cell_list = list(cells.values())

    def __getitem__(self, index: Any) -> Any:
        cells = self.__dict__["_cells"]
        if isinstance(index, slice):
            return type(self)(OrderedDict(list(cells.items())[index]))
        index = _valid_index(len(self), index, type(self).__name__)
        return list(cells.values())[index]

    def __setitem__(self, index: int, cell: Cell) -> None:
        name = type(self).__name__
        cells = self.__dict__["_cells"]
        if _valid_cell(cell, name):
            prefix, _ = _prefix_and_index(cells)
            index = _valid_index(len(self), index, name)
            key = list(cells)[index]
            cells[key] = cell
            cell.update_parameters_name(prefix + key + ".")
            self.cell_list = list(cells.values())

    def __delitem__(self, index: int | slice) -> None:
        name = type(self).__name__
        cells = self.__dict__["_cells"]
        if isinstance(index, int):
            index = _valid_index(len(self), index, name)
            del cells[list(cells)[index]]
            del self._is_dynamic_name[index]
        elif isinstance(index, slice):
            for key in list(cells)[index]:
                del cells[key]
            del self._is_dynamic_name[index]
        else:
            raise TypeError(f"For '{name}', the type of index must be int type or slice type, "
                            f"but got {type(index).__name__}")
        prefix, key_index = _prefix_and_index(cells)
        renamed: OrderedDict = OrderedDict()
        for idx, (key, cell) in enumerate(cells.items()):
            if self._is_dynamic_name[idx]:
                _renumber(cell, prefix, idx, key_index)
                renamed[str(idx)] = cell
            else:
                renamed[key] = cell
        object.__setattr__(self, "_cells", renamed)
        self.cell_list = list(renamed.values())

    def __bool__(self) -> bool:
        return len(self.__dict__["_cells"]) != 0

    def __len__(self) -> int:
        return len(self.__dict__["_cells"])

    def set_grad(self, flag: bool = True) -> None:  # type: ignore[override]
        """Set the flag here and on every child; returns None, as MindSpore's containers."""
        object.__setattr__(self, "requires_grad", flag)
        for cell in self.__dict__["_cells"].values():
            cell.set_grad(flag)

    def append(self, cell: Cell) -> None:
        cells = self.__dict__["_cells"]
        if _valid_cell(cell, type(self).__name__):
            prefix, _ = _prefix_and_index(cells)
            cell.update_parameters_name(prefix + str(len(self)) + ".")
            self._is_dynamic_name.append(True)
            cells[str(len(self))] = cell
        self.cell_list = list(cells.values())

    def construct(self, input_data: Any) -> Any:
        for cell in self.cell_list:
            input_data = cell(input_data)
        return input_data


class CellList(Cell):
    """``nn.CellList(cells)``: Cells held in a list; not connected (no ``construct``)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(kwargs.get("auto_prefix", True))
        if len(args) == 1:
            self.extend(args[0])

    def __getitem__(self, index: Any) -> Any:
        cells = self.__dict__["_cells"]
        name = type(self).__name__
        if isinstance(index, slice):
            return CellList(list(cells.values())[index])
        if isinstance(index, int):
            return cells[str(_valid_index(len(self), index, name))]
        raise TypeError(f"For '{name}', the type of 'index' must be int or slice, but got "
                        f"{type(index).__name__}.")

    def __setitem__(self, index: int, cell: Cell) -> None:
        name = type(self).__name__
        cells = self.__dict__["_cells"]
        if not isinstance(index, int) and _valid_cell(cell, name):
            raise TypeError(f"For '{name}', the type of 'index' must be int, but got "
                            f"{type(index).__name__}.")
        index = _valid_index(len(self), index, name)
        _valid_cell(cell, name)
        if self._auto_prefix:
            prefix, _ = _prefix_and_index(cells)
            cell.update_parameters_name(prefix + str(index) + ".")
        cells[str(index)] = cell

    def __delitem__(self, index: int | slice) -> None:
        name = type(self).__name__
        cells = self.__dict__["_cells"]
        if isinstance(index, int):
            del cells[str(_valid_index(len(self), index, name))]
        elif isinstance(index, slice):
            for key in list(cells)[index]:
                del cells[key]
        else:
            raise TypeError(f"For '{name}', the type of 'index' must be int or slice, but got "
                            f"{type(index).__name__}.")
        prefix, key_index = _prefix_and_index(cells)
        renamed: OrderedDict = OrderedDict()
        for idx, cell in enumerate(cells.values()):
            if self._auto_prefix:
                _renumber(cell, prefix, idx, key_index)
            renamed[str(idx)] = cell
        object.__setattr__(self, "_cells", renamed)

    def __bool__(self) -> bool:
        return len(self.__dict__["_cells"]) != 0

    def __len__(self) -> int:
        return len(self.__dict__["_cells"])

    def __iter__(self) -> Iterator[Cell]:
        return iter(self.__dict__["_cells"].values())

    def __iadd__(self, cells: list[Cell]) -> CellList:
        self.extend(cells)
        return self

    def insert(self, index: int, cell: Cell) -> None:
        name = type(self).__name__
        cells = self.__dict__["_cells"]
        idx = _valid_insert_index(len(self), index, name)
        _valid_cell(cell, name)
        length = len(self)
        prefix, key_index = _prefix_and_index(cells)
        while length > idx:
            if self._auto_prefix:
                _renumber(cells[str(length - 1)], prefix, length, key_index)
            cells[str(length)] = cells[str(length - 1)]
            length -= 1
        cells[str(idx)] = cell
        if self._auto_prefix:
            cell.update_parameters_name(prefix + str(idx) + ".")

    def extend(self, cells: list[Cell]) -> CellList:
        name = type(self).__name__
        if not isinstance(cells, list):
            raise TypeError(f"For '{name}', the new cells wanted to append should be instance of "
                            f"list, but got {type(cells).__name__}.")
        table = self.__dict__["_cells"]
        prefix, _ = _prefix_and_index(table)
        for cell in cells:
            if _valid_cell(cell, name):
                if self._auto_prefix:
                    cell.update_parameters_name(prefix + str(len(self)) + ".")
                table[str(len(self))] = cell
        return self

    def set_grad(self, flag: bool = True) -> None:  # type: ignore[override]
        """Set the flag here and on every child; returns None, as MindSpore's containers."""
        object.__setattr__(self, "requires_grad", flag)
        for cell in self.__dict__["_cells"].values():
            cell.set_grad(flag)

    def append(self, cell: Cell) -> None:
        table = self.__dict__["_cells"]
        if _valid_cell(cell, type(self).__name__):
            if self._auto_prefix:
                prefix, _ = _prefix_and_index(table)
                cell.update_parameters_name(prefix + str(len(self)) + ".")
            table[str(len(self))] = cell

    def construct(self, *inputs: Any) -> Any:
        raise NotImplementedError("CellList holds cells and does not compute; call its cells")
