"""File access for the parallel tools: what a checkpoint holds, and region reads and writes.

Every read the transform tools make goes through :meth:`SourceFile.read` (one region of one
entry of one file), so switching to the package's region reader changes only this module.

Reads go through :func:`mindckpt.open_checkpoint`: opening scans headers only, and
``get_slice(name)[box]`` reads only the byte spans of the region.

Writers stream: the safetensors header is built from the planned shapes, then each tensor is
produced and written in turn, so a destination file is never held in memory whole.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import tensor as T
from ..errors import FormatError
from ..formats.ckpt import write_ckpt
from ..formats.safetensors import encode_header, write_order
from ..pipeline import format_from_name
from ..storage import LOCAL
from .layout import Box

__all__ = ["EntryInfo", "SourceFile", "write_streaming", "fmt_of"]



def fmt_of(path: str) -> str:
    return format_from_name(path) or "ckpt"


@dataclass(frozen=True)
class EntryInfo:
    name: str
    dtype: T.Type | None  # None: a str entry
    shape: tuple[int, ...] | None  # None until known (.ckpt entries before their first read)


class SourceFile:
    """One source checkpoint file, opened lazily; ``rank`` is only used in messages."""

    def __init__(self, path: str, rank: int | None = None):
        self.path = path
        self.rank = rank
        self.fmt = fmt_of(path)
        self._handle: Any = None
        self._lock = threading.Lock()
        self._entries: dict[str, EntryInfo] | None = None
        self.metadata: dict[str, str] = {}
        self.bytes_read = 0

    def __repr__(self) -> str:
        return f"SourceFile({self.path!r}, rank={self.rank})"

    def _open(self) -> Any:
        with self._lock:
            if self._handle is None:
                from ..handle import open_checkpoint

                self._handle = open_checkpoint(self.path, "np", format=self.fmt)
            return self._handle

    # ---------------------------------------------------------------- index

    def entries(self) -> dict[str, EntryInfo]:
        if self._entries is None:
            h = self._open()
            self.metadata = h.metadata() if self.fmt == "safetensors" else {}
            out: dict[str, EntryInfo] = {}
            for name in h.keys():
                e = h.index[name]
                if e.kind == "str":
                    out[name] = EntryInfo(name, None, ())
                elif e.kind == "tensor":
                    out[name] = EntryInfo(name, e.dtype, tuple(e.shape))
                else:
                    raise self._fail(f"entry '{name}' is a {e.kind} entry, which the parallel "
                                     "tools cannot slice; remove it from the checkpoint first")
            self._entries = out
        return self._entries  # type: ignore[return-value]

    def __contains__(self, name: str) -> bool:
        return name in self.entries()

    def info(self, name: str) -> EntryInfo:
        return self.entries()[name]

    def _fail(self, what: str) -> FormatError:
        who = f" (rank {self.rank})" if self.rank is not None else ""
        return FormatError(f"Cannot read the checkpoint file {self.path}{who}: {what}.")

    # ---------------------------------------------------------------- reads

    def read(self, name: str, box: Box | None = None) -> Any:
        """The region ``box`` (in this file's local coordinates) of entry ``name``, reading only
        the bytes it needs.  ``None`` reads the whole entry; str entries come back as str."""
        info = self.info(name)
        h = self._open()
        if info.dtype is None or box is None or not info.shape:
            value = h.get_tensor(name)
        elif _gappy(box, info.shape):
            # a strided region that is a good part of its rows: one read of the rows, then
            # narrow in memory (many small reads cost more than the extra bytes)
            (a, b), rest = box[0], box[1:]
            rows = h.get_slice(name)[a:b]
            self.bytes_read += rows.nbytes
            return rows[(slice(None),) + tuple(slice(x, y) for x, y in rest)]
        else:
            value = h.get_slice(name)[tuple(slice(a, b) for a, b in box)]
        if isinstance(value, np.ndarray):
            self.bytes_read += value.nbytes
        return value

    def release(self) -> None:
        """Nothing is cached between reads (kept for callers that release per parameter)."""

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _gappy(box: Box, shape: tuple[int, ...]) -> bool:
    """Whether ``box`` is non-contiguous but covers at least a quarter of its row span."""
    inner = [b - a for a, b in box[1:]]
    full_inner = list(shape[1:])
    if inner == full_inner:
        return False  # contiguous already
    return 4 * math.prod(inner) >= math.prod(full_inner)


# --------------------------------------------------------------------------- writes


Producer = Callable[[], Any]


def write_streaming(path: str, fmt: str, plan: Sequence[tuple[str, T.Type | None,
                                                               tuple[int, ...] | None, Producer]],
                    *, metadata: dict[str, str] | None = None) -> None:
    """Write ``plan`` (name, dtype, shape, producer) to ``path``, one tensor in memory at a time.

    For safetensors the shapes must be known (the header comes first); ``.ckpt`` records are
    written in plan order.  MindSpore's metadata ``{"format": "ms"}`` is added to safetensors.
    The file appears atomically.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with LOCAL.open_write(path) as w:
        if fmt == "safetensors":
            _write_st(w, plan, metadata)
        else:
            write_ckpt(w, _records(plan))


def _records(plan: Iterable[tuple[str, T.Type | None, Any, Producer]]) -> Iterable[Any]:
    for name, dtype, _shape, produce in plan:
        value = produce()
        yield (name, value, dtype if dtype is T.qint4x2 else None)


def _write_st(w: Any, plan: Sequence[tuple[str, T.Type | None, Any, Producer]],
              metadata: dict[str, str] | None) -> None:
    items = []
    for name, dtype, shape, produce in plan:
        if dtype is None or dtype.st_code is None:
            raise TypeError(f"Cannot save '{name}' as safetensors: dtype {dtype} has no "
                            "safetensors code (str entries cannot be stored in safetensors)")
        items.append((name, dtype, tuple(shape), produce))
    items.sort(key=lambda it: write_order(str(it[1].st_code), it[0]))
    meta = None
    if items:
        meta = {"format": "ms", **(metadata or {})}
        for name, dtype, _s, _p in items:
            if dtype is T.qint4x2:
                meta[name] = "Int4"
    head, _offsets = encode_header(
        [(name, str(dtype.st_code), shape, math.prod(shape) * dtype.itemsize)
         for name, dtype, shape, _p in items], meta)
    w.write(head)
    for name, dtype, shape, produce in items:
        arr = np.asarray(produce(), dtype=dtype.np_dtype)
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")
        if tuple(arr.shape) != shape:
            raise FormatError(f"internal: '{name}' produced shape {arr.shape}, planned {shape}")
        if arr.nbytes:
            w.write(arr.reshape(-1).view(np.uint8).data)
