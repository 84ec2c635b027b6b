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


_tuple_new = tuple.__new__  # Span(o, n) without NamedTuple's Python-level __new__


class IndexEntry:
    """One entry of a checkpoint: ``kind`` is ``"tensor"``, ``"str"`` or ``"map"``.

    ``dtype`` is ``None`` for ``str`` and ``map`` entries.  ``spans`` are the payload bytes in
    file order (a tensor larger than 512 MiB in a ``.ckpt`` has several).  ``shape`` is the
    logical shape (``()`` for scalars).

    Read-only by convention.  A scan makes one per entry (millions, for files of tiny
    entries), so this is a slotted class, not a frozen dataclass (a third of the cost to
    build), and the usual single span is kept as two ints, ``offset`` and ``length``, with
    ``spans`` made on access (130 bytes less per entry).
    """

    __slots__ = ("name", "kind", "dtype", "shape", "type_name", "offset", "length", "extra_spans")
    name: str
    kind: str
    dtype: T.Type | None
    shape: tuple[int, ...]
    type_name: str  # as stored: "Float32", "str", safetensors code
    offset: int  # of the first span (0 if none)
    length: int  # of the first span (0 if none)
    extra_spans: tuple[Span, ...] | None  # all the spans when there is not exactly one

    def __init__(self, name: str, kind: str, dtype: T.Type | None, shape: tuple[int, ...],
                 spans: Any = (), type_name: str = ""):
        self.name = name
        self.kind = kind
        self.dtype = dtype
        self.shape = shape
        self.type_name = type_name
        if len(spans) == 1:
            self.offset, self.length = spans[0]
            self.extra_spans = None
        else:
            self.offset, self.length = spans[0] if spans else (0, 0)
            self.extra_spans = tuple(_tuple_new(Span, (o, n)) for o, n in spans)

    @property
    def spans(self) -> tuple[Span, ...]:
        more = self.extra_spans
        return more if more is not None else (_tuple_new(Span, (self.offset, self.length)),)

    @property
    def nbytes(self) -> int:
        more = self.extra_spans
        return self.length if more is None else sum(s.length for s in more)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IndexEntry):
            return NotImplemented
        return (self.name, self.kind, self.dtype, self.shape, self.spans, self.type_name) == \
            (other.name, other.kind, other.dtype, other.shape, other.spans, other.type_name)

    __hash__ = None  # type: ignore[assignment]

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
