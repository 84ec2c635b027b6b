"""The two types that cross the format boundary.

:class:`Record` flows from ``collect`` (what to save) through the async snapshot to the writers:
one named value (a numpy array, a torch tensor, or a ``str``) and, rarely, a stored-type override
(``qint4x2`` saved as MindSpore's ``Int4``).

:class:`IndexEntry` is what a scan finds and what a writer reports having written: one entry's
name, MindSpore type, shape and the byte spans of its payload in the (decrypted) file, so that a
reader can fill just the entries, or just the region of one entry, it is asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .. import tensor as T

__all__ = ["Record", "IndexEntry", "Index", "Span"]


class Record(NamedTuple):
    """One value to save: ``name``, ``value`` (ndarray | torch.Tensor | str), ``dtype`` override."""

    name: str
    value: Any
    dtype: T.Type | None = None


class Span(NamedTuple):
    """``length`` payload bytes at ``offset`` in the (plaintext) file."""

    offset: int
    length: int


@dataclass(frozen=True)
class IndexEntry:
    """One entry of a checkpoint: ``kind`` is ``"tensor"``, ``"str"`` or ``"map"``.

    ``dtype`` is ``None`` for ``str`` and ``map`` entries.  ``spans`` are the payload bytes in
    file order (a tensor larger than 512 MiB in a ``.ckpt`` has several).  ``shape`` is the
    logical shape (``()`` for scalars).
    """

    name: str
    kind: str
    dtype: T.Type | None
    shape: tuple[int, ...]
    spans: tuple[Span, ...] = ()
    type_name: str = ""  # as stored: "Float32", "str", safetensors code

    @property
    def nbytes(self) -> int:
        return sum(s.length for s in self.spans)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def __repr__(self) -> str:
        t = self.dtype.name if self.dtype is not None else self.kind
        return f"IndexEntry({self.name!r}, {t}, shape={self.shape}, nbytes={self.nbytes})"


@dataclass
class Index:
    """The entries of one file, in file order, plus what the format tells about the file."""

    entries: dict[str, IndexEntry] = field(default_factory=dict)
    format: str = "ckpt"  # "ckpt" | "safetensors"
    crc: int | None = None  # the stored CRC (ckpt trailer / safetensors crc_num), if any
    metadata: dict[str, str] = field(default_factory=dict)
    data_start: int = 0  # safetensors: first payload byte
    size: int = 0  # plaintext bytes

    def __iter__(self) -> Any:
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __getitem__(self, name: str) -> IndexEntry:
        return self.entries[name]

    def keys(self) -> list[str]:
        return list(self.entries)
