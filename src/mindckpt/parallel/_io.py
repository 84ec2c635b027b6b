"""File access for the parallel tools: what a checkpoint holds, and region reads and writes.

Every read the transform tools make goes through :meth:`SourceFile.read` (one region of one
entry of one file), so switching to the package's region reader changes only this module.

* safetensors: the header is parsed once; a region read fetches only the rows of the box's
  leading dimension (one ``pread``) and narrows the rest in memory.
* ``.ckpt``: read through the public ``load_checkpoint(choice_func=...)``, one entry at a time
  (the reader seeks over the other payloads); the last entry read is kept until
  :meth:`SourceFile.release` so the shape probe and the read share one pass.

Writers stream: the safetensors header is built from the planned shapes, then each tensor is
produced and written in turn, so a destination file is never held in memory whole.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import tensor as T
from ..errors import FormatError
from ..formats.ckpt import write_ckpt
from ..storage import LOCAL
from .layout import Box

__all__ = ["EntryInfo", "SourceFile", "write_streaming", "fmt_of"]

_ST_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32",
             "U32", "F32", "F64", "I64", "U64"]  # safetensors' dtype enum: its write order
_MAX_HEADER = 100_000_000


def fmt_of(path: str) -> str:
    return "safetensors" if path.endswith(".safetensors") else "ckpt"


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
        self._entries: dict[str, EntryInfo] | None = None
        self._st: dict[str, tuple[T.Type, tuple[int, ...], int]] = {}
        self._data_start = 0
        self._held: tuple[str, Any] | None = None
        self._held_type: T.Type | None = None
        self.metadata: dict[str, str] = {}
        self.bytes_read = 0

    def __repr__(self) -> str:
        return f"SourceFile({self.path!r}, rank={self.rank})"

    # ---------------------------------------------------------------- index

    def entries(self) -> dict[str, EntryInfo]:
        if self._entries is None:
            self._entries = self._scan_st() if self.fmt == "safetensors" else self._scan_ckpt()
        return self._entries

    def __contains__(self, name: str) -> bool:
        return name in self.entries()

    def info(self, name: str) -> EntryInfo:
        e = self.entries()[name]
        if e.shape is None:
            value = self._load(name)
            if isinstance(value, str):
                e = EntryInfo(name, None, ())
            else:
                dtype = T.dtype_of_numpy(value.dtype)
                if self._held_type is not None:
                    dtype = self._held_type
                e = EntryInfo(name, dtype, tuple(value.shape))
            assert self._entries is not None
            self._entries[name] = e
        return e

    def _fail(self, what: str) -> FormatError:
        who = f" (rank {self.rank})" if self.rank is not None else ""
        return FormatError(f"Cannot read the checkpoint file {self.path}{who}: {what}.")

    def _scan_st(self) -> dict[str, EntryInfo]:
        try:
            size = os.path.getsize(self.path)
            with open(self.path, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                if size < 8 or n > _MAX_HEADER or 8 + n > size:
                    raise self._fail(f"safetensors header length {n} does not fit the file "
                                     f"({size} bytes)")
                header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            if isinstance(e, FormatError):
                raise
            raise self._fail(f"the safetensors header is not valid JSON ({e})") from None
        if not isinstance(header, dict):
            raise self._fail("the safetensors header is not a JSON object")
        meta = header.pop("__metadata__", None) or {}
        self.metadata = meta if isinstance(meta, dict) else {}
        self._data_start = 8 + n
        data_len = size - self._data_start
        out: dict[str, EntryInfo] = {}
        for name in sorted(header):
            info = header[name]
            try:
                code, shape, (start, end) = info["dtype"], tuple(info["shape"]), \
                    info["data_offsets"]
            except (KeyError, TypeError, ValueError):
                raise self._fail(f"tensor '{name}' lacks dtype, shape or data_offsets") from None
            dtype = T.dtype_of_st(code) if isinstance(code, str) else None
            if dtype is None:
                raise self._fail(f"tensor '{name}' has unsupported dtype {code!r}")
            if self.metadata.get(name) == "Int4" and dtype is T.int8:
                dtype = T.qint4x2
            if not all(isinstance(d, int) and d >= 0 for d in shape):
                raise self._fail(f"tensor '{name}' has an invalid shape {list(shape)}")
            if not (isinstance(start, int) and isinstance(end, int)
                    and 0 <= start <= end <= data_len
                    and end - start == math.prod(shape) * dtype.itemsize):
                raise self._fail(f"tensor '{name}' has offsets {[start, end]} that do not match "
                                 f"its shape {list(shape)} and the data ({data_len} bytes)")
            self._st[name] = (dtype, shape, start)
            out[name] = EntryInfo(name, dtype, shape)
        return out

    def _scan_ckpt(self) -> dict[str, EntryInfo]:
        from .._api import load_checkpoint

        names: list[str] = []

        def record(n: str) -> bool:
            names.append(n)
            return False

        try:
            load_checkpoint(self.path, choice_func=record)
        except ValueError as e:
            if "empty" not in str(e):
                raise
        return {n: EntryInfo(n, None, None) for n in dict.fromkeys(names)}

    # ---------------------------------------------------------------- reads

    def _load(self, name: str) -> Any:
        """A whole ``.ckpt`` entry (ndarray or str), kept until ``release``."""
        if self._held is not None and self._held[0] == name:
            return self._held[1]
        from .._api import load_checkpoint

        got = load_checkpoint(self.path, choice_func=lambda n: n == name)
        value = got[name]
        self._held_type = None
        if not isinstance(value, str):
            t = getattr(value, "dtype", None)
            self._held_type = t if isinstance(t, T.Type) else None
            value = value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)
            self.bytes_read += value.nbytes
        self._held = (name, value)
        return value

    def read(self, name: str, box: Box | None = None) -> Any:
        """The region ``box`` (in this file's local coordinates) of entry ``name``.

        ``None`` reads the whole entry.  str entries come back as str.
        """
        if self.fmt == "ckpt":
            value = self._load(name)
            if isinstance(value, str) or box is None:
                return value
            return value[tuple(slice(a, b) for a, b in box)]
        self.entries()
        dtype, shape, start = self._st[name]
        if box is None:
            box = tuple((0, d) for d in shape)
        if not shape:
            rows, lo, hi = 1, 0, 1
        else:
            lo, hi = box[0]
            rows = hi - lo
        row_bytes = dtype.itemsize * math.prod(shape[1:]) if shape else dtype.itemsize
        out = np.empty((rows, *shape[1:]) if shape else (), dtype=dtype.np_dtype)
        mv = out.reshape(-1).view(np.uint8).data
        n = rows * row_bytes
        if n:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                done = 0
                off = self._data_start + start + lo * row_bytes
                while done < n:
                    got = os.preadv(fd, [mv[done:]], off + done)
                    if not got:
                        raise self._fail(f"tensor '{name}' is cut short")
                    done += got
            finally:
                os.close(fd)
            self.bytes_read += n
        if not shape:
            return out
        rest = tuple(slice(a, b) for a, b in box[1:])
        return out[(slice(None),) + rest] if rest else out

    def release(self) -> None:
        self._held = None


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
    rank = {c: i for i, c in enumerate(_ST_ORDER)}
    items = []
    for name, dtype, shape, produce in plan:
        if dtype is None or dtype.st_code is None:
            raise TypeError(f"Cannot save '{name}' as safetensors: dtype {dtype} has no "
                            "safetensors code (str entries cannot be stored in safetensors)")
        items.append((name, dtype, tuple(shape), produce))
    items.sort(key=lambda it: (-rank[str(it[1].st_code)], it[0]))
    header: dict[str, Any] = {}
    if items:
        meta = {"format": "ms", **(metadata or {})}
        for name, dtype, _s, _p in items:
            if dtype is T.qint4x2:
                meta[name] = "Int4"
        header["__metadata__"] = meta
    offset = 0
    for name, dtype, shape, _p in items:
        nbytes = math.prod(shape) * dtype.itemsize
        header[name] = {"dtype": dtype.st_code, "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    w.write(len(blob).to_bytes(8, "little") + blob)
    for name, dtype, shape, produce in items:
        arr = np.asarray(produce(), dtype=dtype.np_dtype)
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")
        if tuple(arr.shape) != shape:
            raise FormatError(f"internal: '{name}' produced shape {arr.shape}, planned {shape}")
        if arr.nbytes:
            w.write(arr.reshape(-1).view(np.uint8).data)
