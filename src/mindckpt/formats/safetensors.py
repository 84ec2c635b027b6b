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
from typing import Any

import numpy as np

from .. import tensor as T
from ..errors import ChecksumError, FormatError
from .ckpt import Entry, content_view

__all__ = ["write_safetensors", "read_safetensors", "ms_crc"]

MAX_HEADER = 100_000_000
_ENUM_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32",
               "U32", "F32", "F64", "I64", "U64"]
_RANK = {code: i for i, code in enumerate(_ENUM_ORDER)}
_ZERO_RUN_LIMIT = 1 << 26


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
    records: list[tuple[str, np.ndarray]],
    *,
    crc: bool = False,
    remove_redundancy: bool | None = None,
    dtypes: dict[str, T.Type] | None = None,
) -> None:
    """Write ``records`` as a safetensors file with MindSpore's metadata."""
    dtypes = dtypes or {}
    for name, value in records:
        if isinstance(value, str):
            raise TypeError(
                f"Cannot save '{name}' as safetensors: str values are not supported by the "
                "safetensors format (MindSpore fails with 'Unknown dtype \"str32\"'); save it "
                "with format='ckpt' or drop it"
            )
    items = sorted(
        ((name, arr, *_code(name, arr, dtypes.get(name))) for name, arr in records),
        key=lambda it: (-_RANK[it[2]], it[0]),
    )
    header: dict[str, Any] = {}
    if items:
        meta: dict[str, str] = {"format": "ms"}
        if remove_redundancy is not None:
            meta["remove_redundancy"] = str(bool(remove_redundancy))
        for name, *_rest in items:
            if dtypes.get(name) is T.qint4x2:
                meta[name] = "Int4"
        if crc:
            meta["crc_num"] = str(ms_crc((it[0], it[1]) for it in items))
        header["__metadata__"] = meta
    offset = 0
    for name, _arr, code, shape, nbytes in items:
        header[name] = {"dtype": code, "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    sink.write(len(blob).to_bytes(8, "little") + blob)
    for _name, arr, _c, _shape, nbytes in items:
        if nbytes:
            sink.write(content_view(arr if isinstance(arr, np.ndarray) else T.to_numpy(arr)))


def _fail(path: str, what: str) -> FormatError:
    return FormatError(
        f"Fail to parse the input safetensors: '{path}'. Please check the correctness of the "
        f"file: {what}."
    )


def read_safetensors(
    source: Any,
    path: str,
    select: Callable[[str], bool] = lambda _n: True,
    *,
    crc_check: bool = False,
) -> tuple[dict[str, Entry], dict[str, str]]:
    """Read a safetensors file (``source``: a path's fd via ``(fd, size)`` or a bytes-like).

    Returns ``({name: Entry}, metadata)``, names sorted as MindSpore returns them.
    """
    if hasattr(source, "readinto_at"):  # a storage ByteSource
        size = source.size
        pread = source.pread
        readinto = source.readinto
    else:
        buf = memoryview(source).cast("B")
        size = len(buf)

        def pread(n: int, off: int) -> bytes:
            return bytes(buf[off:off + n])

        def readinto(mv: memoryview, off: int) -> int:
            part = buf[off:off + len(mv)]
            mv[:len(part)] = part
            return len(part)

    if size < 8:
        raise _fail(path, f"the file has {size} bytes, fewer than the 8-byte header length")
    n = int.from_bytes(pread(8, 0), "little")
    if n > MAX_HEADER or 8 + n > size:
        raise _fail(path, f"header length {n} exceeds the file size {size} or 100 MB")
    try:
        header = json.loads(pread(n, 8).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _fail(path, f"the header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise _fail(path, "the header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _fail(path, "__metadata__ must map strings to strings")
    data_start = 8 + n
    data_len = size - data_start
    spans: list[tuple[int, int, str]] = []
    plan: list[tuple[str, T.Type, tuple[int, ...], int, int]] = []
    for name, info in header.items():
        try:
            code, shape, (start, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise _fail(path, f"tensor '{name}' lacks dtype, shape or data_offsets") from None
        dtype = T.dtype_of_st(code) if isinstance(code, str) else None
        if dtype is None:
            raise _fail(path, f"tensor '{name}' has unsupported dtype {code!r}")
        if meta.get(name) == "Int4" and dtype is T.int8:
            dtype = T.qint4x2
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            raise _fail(path, f"tensor '{name}' has an invalid shape {list(shape)}")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= data_len):
            raise _fail(path, f"tensor '{name}' has offsets {[start, end]} outside the data "
                              f"({data_len} bytes)")
        if end - start != math.prod(shape) * dtype.itemsize:
            raise _fail(path, f"tensor '{name}' spans {end - start} bytes but shape "
                              f"{list(shape)} {code} needs {math.prod(shape) * dtype.itemsize}")
        spans.append((start, end, name))
        plan.append((name, dtype, shape, start, end))
    spans.sort()
    pos = 0
    for start, end, name in spans:
        if start != pos:
            raise _fail(path, f"tensor '{name}' starts at {start}, expected {pos} "
                              "(overlapping or gapped data)")
        pos = end
    if pos != data_len:
        raise _fail(path, f"{data_len - pos} bytes follow the last tensor")
    stored = meta.get("crc_num")
    if crc_check and stored is None:
        raise ChecksumError(
            f"For 'load_checkpoint', the safetensors file {path} does not contain a crc "
            "code, so crc_check=True cannot verify it. Load it with crc_check=False if "
            "you trust it."
        )
    out: dict[str, Entry] = {}
    for name, dtype, shape, start, end in sorted(plan, key=lambda p: p[0]):
        if not crc_check and not select(name):  # the CRC covers every tensor: read them all
            continue
        arr = np.empty(shape, dtype=dtype.np_dtype)
        if end > start:
            mv = arr.reshape(-1).view(np.uint8).data
            if readinto(mv, data_start + start) != end - start:
                raise _fail(path, f"tensor '{name}' is cut short")
        out[name] = Entry(dtype, arr)
    if crc_check:
        actual = ms_crc((k, e.array) for k, e in out.items())
        if str(actual) != stored:
            raise ChecksumError(
                "For 'load_checkpoint', the crc check has failed. Please check whether the ckpt "
                f"file is damaged: {path} stores crc {stored}, its content has {actual}."
            )
        out = {k: e for k, e in out.items() if select(k)}
    return out, meta
