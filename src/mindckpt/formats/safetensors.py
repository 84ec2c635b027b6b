"""safetensors files as MindSpore writes them (``format="safetensors"``).

Layout: 8-byte little-endian header length ``n``; ``n`` bytes of JSON padded with spaces to a
multiple of 8; the raw tensor bytes.  The JSON holds ``__metadata__`` (MindSpore writes
``{"format": "ms"}``, plus ``crc_num``, ``remove_redundancy`` and ``<name>: "Int4"`` for
``qint4x2`` tensors) and one entry per tensor, in the order the safetensors library uses: dtype
descending in the library's enum order, then name; offsets follow that order.

Written here rather than through ``safetensors.numpy`` because that module cannot hold
bfloat16 (numpy has no such dtype), builds the whole file in memory, and cannot write into our
atomic sink.  Tests cross-check both directions against the ``safetensors`` package.

MindSpore's ``crc_num`` is ``crc32`` chained over each name (UTF-8) and ``bytes(array)`` in
sorted-name order.  For a 0-d integer array ``bytes(array)`` is *value* zero bytes, not the
element, and mindckpt reproduces that so MindSpore's ``crc_check=True`` accepts its files.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Iterable
from typing import Any, cast

import numpy as np

from .. import tensor as T
from ..errors import ChecksumError, FormatError
from .ckpt import Entry, content_view
from .records import Index, IndexEntry, Record, Span

__all__ = ["write_safetensors", "scan_safetensors", "read_safetensors", "check_crc", "ms_crc"]

MAX_HEADER = 100_000_000
_ENUM_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32",
               "U32", "F32", "F64", "I64", "U64"]
_RANK = {code: i for i, code in enumerate(_ENUM_ORDER)}
_ZERO_RUN_LIMIT = 1 << 26
_MAX_DEPTH = 8  # the format needs 3 levels: header, entry, shape/offsets
_MAX_DIM = 1 << 62


def _crc_piece(arr: Any, crc: int) -> int:
    arr = arr if isinstance(arr, np.ndarray) else T.to_numpy(arr)
    if arr.ndim == 0 and arr.dtype.kind in "iu":
        v = int(arr)
        if 0 <= v <= _ZERO_RUN_LIMIT:  # bytes(np.array(v)) == b"\0" * v
            return zlib.crc32(bytes(v), crc)
    return zlib.crc32(content_view(arr), crc)


def ms_crc(items: Iterable[tuple[str, np.ndarray]]) -> int:
    """MindSpore's safetensors ``crc_num`` over ``(name, array)`` pairs."""
    crc = 0
    for name, arr in sorted(items, key=lambda kv: kv[0]):
        crc = zlib.crc32(name.encode("utf-8"), crc)
        crc = _crc_piece(arr, crc)
    return crc


def _code(name: str, value: Any, dtype: T.Type | None) -> tuple[str, tuple[int, ...], int]:
    shape, t, nbytes = T.meta(value)
    t = dtype or t
    if t is None or t.st_code is None:
        raise TypeError(
            f"Cannot save '{name}' as safetensors: dtype {getattr(value, 'dtype', '?')} has no "
            "safetensors code"
        )
    return t.st_code, shape, nbytes


def write_safetensors(
    sink: Any,
    records: list[Record],
    *,
    crc: bool = False,
    remove_redundancy: bool | None = None,
) -> Index:
    """Write ``records`` as a safetensors file with MindSpore's metadata; return its index."""
    for name, value, _t in records:
        if isinstance(value, str):
            raise TypeError(
                f"Cannot save '{name}' as safetensors: str values are not supported by the "
                "safetensors format (MindSpore fails with 'Unknown dtype \"str32\"'); save it "
                "with format='ckpt' or drop it"
            )
    items = sorted(
        ((name, arr, t, *_code(name, arr, t)) for name, arr, t in records),
        key=lambda it: (-_RANK[it[3]], it[0]),
    )
    header: dict[str, Any] = {}
    meta: dict[str, str] = {}
    if items:
        meta["format"] = "ms"
        if remove_redundancy is not None:
            meta["remove_redundancy"] = str(bool(remove_redundancy))
        for name, _arr, t, *_rest in items:
            if t is T.qint4x2:
                meta[name] = "Int4"
        if crc:
            meta["crc_num"] = str(ms_crc((it[0], it[1]) for it in items))
        header["__metadata__"] = meta
    offset = 0
    for name, _arr, _t, code, shape, nbytes in items:
        header[name] = {"dtype": code, "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    sink.write(len(blob).to_bytes(8, "little") + blob)
    data_start = 8 + len(blob)
    index = Index(format="safetensors", metadata=dict(meta), data_start=data_start,
                  size=data_start + offset)
    if "crc_num" in meta:
        index.crc = int(meta["crc_num"])
    for name, arr, t, code, shape, nbytes in sorted(items, key=lambda it: it[0]):
        start = header[name]["data_offsets"][0]
        dtype = t or T.meta(arr)[1]
        index.entries[name] = IndexEntry(name, "tensor", dtype, tuple(shape),
                                         (Span(data_start + start, nbytes),), code)
    for _name, arr, _t, _c, _shape, nbytes in items:
        if nbytes:
            sink.write(content_view(arr if isinstance(arr, np.ndarray) else T.to_numpy(arr)))
    return index


def _fail(path: str, what: str) -> FormatError:
    return FormatError(
        f"Fail to parse the input safetensors: '{path}'. Please check the correctness of the "
        f"file: {what}."
    )


def _no_deep_nesting(raw: bytes, path: str) -> None:
    """Refuse JSON nested deeper than the format needs, before ``json.loads`` recurses."""
    depth = 0
    in_str = False
    esc = False
    for ch in raw:
        if in_str:
            if esc:
                esc = False
            elif ch == 0x5C:
                esc = True
            elif ch == 0x22:
                in_str = False
        elif ch == 0x22:
            in_str = True
        elif ch in (0x7B, 0x5B):
            depth += 1
            if depth > _MAX_DEPTH:
                raise _fail(path, f"the header nests deeper than {_MAX_DEPTH} levels")
        elif ch in (0x7D, 0x5D):
            depth -= 1


def scan_safetensors(source: Any, path: str) -> Index:
    """The :class:`Index` of a safetensors file from its header alone (no payload is read).

    ``source`` has ``size`` and ``pread(n, offset)``.  Every entry is checked: known dtype,
    shape of non-negative ints (at most 64 dims), offsets inside the data, spans matching the
    shapes, no gaps or overlaps.
    """
    size = source.size
    if size < 8:
        raise _fail(path, f"the file has {size} bytes, fewer than the 8-byte header length")
    n = int.from_bytes(source.pread(8, 0), "little")
    if n > MAX_HEADER or 8 + n > size:
        raise _fail(path, f"header length {n} exceeds the file size {size} or 100 MB")
    raw = source.pread(n, 8)
    if len(raw) != n:
        raise _fail(path, "the header is cut short")
    _no_deep_nesting(raw, path)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _fail(path, f"the header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise _fail(path, "the header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _fail(path, "__metadata__ must map strings to strings")
    data_start = 8 + n
    data_len = size - data_start
    spans: list[tuple[int, int, str]] = []
    index = Index(format="safetensors", metadata=meta, data_start=data_start, size=size)
    for name, info in sorted(header.items()):
        try:
            code, shape, (start, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise _fail(path, f"tensor '{name}' lacks dtype, shape or data_offsets") from None
        dtype = T.dtype_of_st(code) if isinstance(code, str) else None
        if dtype is None:
            raise _fail(path, f"tensor '{name}' has unsupported dtype {code!r}")
        if meta.get(name) == "Int4" and dtype is T.int8:
            dtype = T.qint4x2
        if not all(type(d) is int and 0 <= d <= _MAX_DIM for d in shape) or len(shape) > 64:
            raise _fail(path, f"tensor '{name}' has an invalid shape {list(shape)[:70]}")
        if not (type(start) is int and type(end) is int and 0 <= start <= end <= data_len):
            raise _fail(path, f"tensor '{name}' has offsets {[start, end]} outside the data "
                              f"({data_len} bytes)")
        need = math.prod(shape) * dtype.itemsize
        if end - start != need:
            raise _fail(path, f"tensor '{name}' spans {end - start} bytes but shape "
                              f"{list(shape)} {code} needs {need}")
        spans.append((start, end, name))
        index.entries[name] = IndexEntry(name, "tensor", dtype, shape,
                                         (Span(data_start + start, end - start),), code)
    spans.sort()
    pos = 0
    for start, end, name in spans:
        if start != pos:
            raise _fail(path, f"tensor '{name}' starts at {start}, expected {pos} "
                              "(overlapping or gapped data)")
        pos = end
    if pos != data_len:
        raise _fail(path, f"{data_len - pos} bytes follow the last tensor")
    if "crc_num" in meta:
        try:
            index.crc = int(meta["crc_num"])
        except ValueError:
            raise _fail(path, f"crc_num {meta['crc_num'][:40]!r} is not a number") from None
    return index


def check_crc(path: str, index: Index, arrays: Iterable[tuple[str, np.ndarray]]) -> None:
    """MindSpore's ``crc_check=True`` on safetensors: ``crc_num`` over every tensor."""
    stored = index.metadata.get("crc_num")
    if stored is None:
        raise ChecksumError(
            f"For 'load_checkpoint', the safetensors file {path} does not contain a crc "
            "code, so crc_check=True cannot verify it. Load it with crc_check=False if "
            "you trust it."
        )
    actual = ms_crc(arrays)
    if str(actual) != stored:
        raise ChecksumError(
            "For 'load_checkpoint', the crc check has failed. Please check whether the ckpt "
            f"file is damaged: {path} stores crc {stored}, its content has {actual}."
        )


def read_safetensors(
    source: Any,
    path: str,
    select: Callable[[str], bool] = lambda _n: True,
    *,
    crc_check: bool = False,
) -> tuple[dict[str, Entry], dict[str, str]]:
    """Read a safetensors file from ``source`` (``size``, ``pread(n, offset)``,
    ``readinto(view, offset)``).

    Returns ``({name: Entry}, metadata)``, names sorted as MindSpore returns them.
    """
    index = scan_safetensors(source, path)
    out: dict[str, Entry] = {}
    for e in index:
        if not crc_check and not select(e.name):  # the CRC covers every tensor: read them all
            continue
        dtype = cast(T.Type, e.dtype)
        arr = np.empty(e.shape, dtype=dtype.np_dtype)
        if e.nbytes:
            mv = arr.reshape(-1).view(np.uint8).data
            if source.readinto(mv, e.spans[0].offset) != e.nbytes:
                raise _fail(path, f"tensor '{e.name}' is cut short")
        out[e.name] = Entry(dtype, arr)
    if crc_check:
        check_crc(path, index, ((k, en.array) for k, en in out.items()))
        out = {k: en for k, en in out.items() if select(k)}
    return out, index.metadata
