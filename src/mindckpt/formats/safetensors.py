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

``crc_num`` covers names and payload bytes, not dtypes, shapes or offsets: a header edited from
``F32`` to ``I32``, or from shape ``[2, 3]`` to ``[3, 2]``, passes it.  So with ``crc=True``
mindckpt also writes ``mindckpt_header_crc32`` (:data:`HEADER_CRC_KEY`) in ``__metadata__``:
the decimal ``crc32`` of :func:`header_digest_input`, a canonical JSON of the metadata (less
this key and ``crc_num``) and of every entry's name, dtype, shape and offsets, in name order.
MindSpore ignores metadata keys it does not know (checked against MindSpore 2.10, including
``crc_check=True``).  Canonical rather than raw bytes, so a tool that re-serializes the header
(the ``safetensors`` library writes metadata keys in hash order) keeps it valid.  The scan
verifies it whenever it is present, with or without ``crc_check`` (it costs one pass over the
header, which the scan parses anyway); a mismatch is a ``ChecksumError``.  Like ``crc_num`` it
detects damage and careless edits, not a forger, who can recompute both.

Hostile headers: the length is bounded by the file and 100 MB before it is read; nesting
deeper than the format needs is refused before ``json.loads`` recurses; every shape is checked
against numpy's limits (at most 64 dims, ``size * itemsize`` representable, zero-size tensors
included) and every span against the data; each failure is a ``FormatError`` naming the file
and the tensor.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import numpy as np

from .. import tensor as T
from ..errors import ChecksumError, FormatError
from .ckpt import Entry, content_view, gc_paused
from ..codecs.crc import crc32
from .records import Index, IndexEntry, Record, Span

__all__ = ["write_safetensors", "scan_safetensors", "read_safetensors", "check_crc", "ms_crc",
           "HEADER_CRC_KEY", "header_digest_input", "header_crc"]

MAX_HEADER = 100_000_000
_ENUM_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32",
               "U32", "F32", "F64", "I64", "U64"]
_RANK = {code: i for i, code in enumerate(_ENUM_ORDER)}
_ZERO_RUN_LIMIT = 1 << 26
_MAX_DEPTH = 8  # the format needs 3 levels: header, entry, shape/offsets
_MAX_DIM = 1 << 62
MAX_NDIM = 64
HEADER_CRC_KEY = "mindckpt_header_crc32"
_NOT_COVERED = (HEADER_CRC_KEY, "crc_num")  # crc_num has its own check
_BATCH = 1 << 20  # small payloads are read in windows of about this size


def _crc_piece(arr: Any, crc: int) -> int:
    arr = arr if isinstance(arr, np.ndarray) else T.to_numpy(arr)
    if arr.ndim == 0 and arr.dtype.kind in "iu":
        v = int(arr)
        if 0 <= v <= _ZERO_RUN_LIMIT:  # bytes(np.array(v)) == b"\0" * v
            return crc32(bytes(v), crc)
    return crc32(content_view(arr), crc)


def ms_crc(items: Iterable[tuple[str, np.ndarray]]) -> int:
    """MindSpore's safetensors ``crc_num`` over ``(name, array)`` pairs."""
    crc = 0
    for name, arr in sorted(items, key=lambda kv: kv[0]):
        crc = crc32(name.encode("utf-8"), crc)
        crc = _crc_piece(arr, crc)
    return crc


def header_digest_input(meta: dict[str, str],
                        entries: Iterable[tuple[str, str, Any, int, int]]) -> bytes:
    """What :data:`HEADER_CRC_KEY` covers: ``[metadata items, [[name, dtype, shape, start,
    end], ...]]`` as compact JSON, metadata (less ``crc_num`` and the key itself) and entries
    sorted by name, offsets relative to the data."""
    doc = [sorted((k, v) for k, v in meta.items() if k not in _NOT_COVERED),
           sorted([name, code, list(shape), start, end] for name, code, shape, start, end
                  in entries)]
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def header_crc(meta: dict[str, str], entries: Iterable[tuple[str, str, Any, int, int]]) -> int:
    """The value of :data:`HEADER_CRC_KEY` for this metadata and these entries."""
    return crc32(header_digest_input(meta, entries))


def _code(name: str, value: Any, dtype: T.Type | None) -> tuple[str, tuple[int, ...], int]:
    shape, t, nbytes = T.meta(value)
    t = dtype or t
    if t is None or t.st_code is None:
        raise TypeError(
            f"Cannot save '{name}' as safetensors: dtype {getattr(value, 'dtype', '?')} has no "
            "safetensors code"
        )
    return t.st_code, shape, nbytes


def write_order(code: str, name: str) -> tuple[int, str]:
    """The safetensors library's write order: dtype descending in its enum order, then name."""
    return (-_RANK[code], name)


def encode_header(
    entries: Sequence[tuple[str, str, Sequence[int], int]],
    meta: dict[str, str] | None,
    *,
    header_checksum: bool = False,
) -> tuple[bytes, list[int]]:
    """The 8-byte length and the space-padded JSON header for ``entries`` (name, dtype code,
    shape, nbytes) in write order, and each entry's offset in the data.  ``header_checksum``
    adds :data:`HEADER_CRC_KEY` to ``meta`` (which must then be given)."""
    header: dict[str, Any] = {}
    if meta is not None:
        header["__metadata__"] = meta
    offsets: list[int] = []
    offset = 0
    for name, code, shape, nbytes in entries:
        header[name] = {"dtype": code, "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        offsets.append(offset)
        offset += nbytes
    if header_checksum and meta is not None:
        meta[HEADER_CRC_KEY] = str(header_crc(
            meta, ((k, v["dtype"], v["shape"], *v["data_offsets"])
                   for k, v in header.items() if k != "__metadata__")))
    blob = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    return len(blob).to_bytes(8, "little") + blob, offsets


def ms_metadata(int4_names: Iterable[str], remove_redundancy: bool | None,
                crc_num: int | None) -> dict[str, str]:
    """MindSpore's ``__metadata__`` of a non-empty file, in its key order: ``format``,
    ``remove_redundancy`` (when given), ``Int4`` per qint4x2 tensor, ``crc_num`` (when
    given)."""
    meta = {"format": "ms"}
    if remove_redundancy is not None:
        meta["remove_redundancy"] = str(bool(remove_redundancy))
    for name in int4_names:
        meta[name] = "Int4"
    if crc_num is not None:
        meta["crc_num"] = str(crc_num)
    return meta


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
        key=lambda it: write_order(it[3], it[0]),
    )
    meta: dict[str, str] = {}
    if items:
        meta = ms_metadata([name for name, _arr, t, *_rest in items if t is T.qint4x2],
                           remove_redundancy,
                           ms_crc((it[0], it[1]) for it in items) if crc else None)
    head, offsets = encode_header([(it[0], it[3], it[4], it[5]) for it in items],
                                  meta if items else None, header_checksum=crc and bool(items))
    sink.write(head)
    offset = sum(it[5] for it in items)
    starts = {it[0]: o for it, o in zip(items, offsets, strict=True)}
    data_start = len(head)
    index = Index(format="safetensors", metadata=dict(meta), data_start=data_start,
                  size=data_start + offset)
    if "crc_num" in meta:
        index.crc = int(meta["crc_num"])
    for name, arr, t, code, shape, nbytes in sorted(items, key=lambda it: it[0]):
        start = starts[name]
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


_STRUCT = bytes(range(256)).translate(None, b'{}[]"\\')  # all bytes but these six
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)


def _no_deep_nesting(raw: bytes | bytearray, path: str) -> None:
    """Refuse JSON nested deeper than the format needs, before ``json.loads`` recurses.

    At C speed: keep only brackets, quotes and backslashes, drop the strings, then remove
    innermost bracket pairs ``_MAX_DEPTH`` times; whatever is left nests deeper or does not
    balance."""
    rest = raw.translate(None, _STRUCT)
    # strings: with no escapes in the header every string is now '""'
    rest = _STRING.sub(b"", rest) if b"\\" in rest else rest.replace(b'""', b"")
    for _ in range(_MAX_DEPTH):
        if not rest:
            return
        # one level: every innermost pair at once (marked first so that '{[]}' loses one)
        rest = rest.replace(b"[]", b"\0").replace(b"{}", b"\0").replace(b"\0", b"")
    if rest:
        raise _fail(path, f"the header nests deeper than {_MAX_DEPTH} levels or its brackets "
                          "do not balance")


def _read_header(source: Any, path: str) -> tuple[int, bytearray]:
    size = source.size
    if size < 8:
        raise _fail(path, f"the file has {size} bytes, fewer than the 8-byte header length")
    head = bytearray(8)
    if source.readinto(memoryview(head), 0) != 8:
        raise _fail(path, "the 8-byte header length is cut short")
    n = int.from_bytes(head, "little")
    if n > MAX_HEADER or 8 + n > size:
        raise _fail(path, f"header length {n} exceeds the file size {size} or 100 MB")
    raw = bytearray(n)
    if source.readinto(memoryview(raw), 8) != n:
        raise _fail(path, "the header is cut short")
    return n, raw


def scan_safetensors(source: Any, path: str, *, verify_header: bool = True) -> Index:
    """The :class:`Index` of a safetensors file from its header alone (no payload is read).

    ``source`` has ``size`` and ``readinto(view, offset)`` (which fills the view unless the
    file ends).  Every entry is checked: known dtype, shape of non-negative ints (at most 64
    dims, ``size * itemsize`` representable), offsets inside the data, spans matching the
    shapes, no gaps or overlaps.  ``verify_header``: check :data:`HEADER_CRC_KEY` when the
    file has it (module doc); False skips that check only.
    """
    with gc_paused():
        return _scan(source, path, verify_header)[0]


#: ``make(name, dtype, shape, offset, nbytes)``: what :func:`scan_safetensors_into` builds.
Make = Callable[[str, T.Type, tuple[int, ...], int, int], Any]


def scan_safetensors_into(source: Any, path: str, make: Make,
                          select: Callable[[str], bool] = lambda _n: True, *,
                          verify_header: bool = True) -> tuple[Index, dict[str, Any]]:
    """The checks of :func:`scan_safetensors`, building ``make(...)`` for each selected entry
    (in name order) instead of an index entry: one pass for a reader that turns every entry
    into a value at once (a file of a million tiny entries is loaded without an index of a
    million objects).  Returns the index, with its metadata, CRC and sizes but no entries,
    and ``{name: value}``."""
    with gc_paused():
        return _scan(source, path, verify_header, make, select)


def _check_shape(path: str, name: str, shape_l: list[Any],
                 itemsize: int) -> tuple[tuple[int, ...], int] | None:
    """``(shape, bytes)`` of a valid header shape; None if it is not a list of at most
    :data:`MAX_NDIM` ints in ``[0, 2**62]``; raises if its bytes are impossibly large."""
    if len(shape_l) > MAX_NDIM:
        return None
    numel = 1
    nonzero = 1
    for d in shape_l:
        if type(d) is not int or not 0 <= d <= _MAX_DIM:
            return None
        numel *= d
        if d:
            nonzero *= d
    if nonzero * itemsize > _MAX_DIM:
        raise _fail(path, f"tensor '{name}' has an impossibly large shape {shape_l}")
    return tuple(shape_l), numel * itemsize


def _check_tiling(path: str, names: list[str], st: np.ndarray, en: np.ndarray,
                  data_len: int) -> None:
    """The data offsets (``st``, ``en``: int64, one per name) tile ``[0, data_len)``: no gap,
    no overlap (a zero-size tensor may sit anywhere, even between two at the same offset)."""
    if not names:
        if data_len:
            raise _fail(path, f"{data_len} bytes follow the last tensor")
        return
    order = np.lexsort((en, st))  # by (start, end): a zero-size tensor before its neighbour
    st, en = st[order], en[order]
    expected = np.empty_like(st)
    expected[0] = 0
    expected[1:] = en[:-1]
    bad = np.flatnonzero(st != expected)
    if bad.size:
        k = int(bad[0])
        raise _fail(path, f"tensor '{names[int(order[k])]}' starts at {int(st[k])}, expected "
                          f"{int(expected[k])} (overlapping or gapped data)")
    if int(en[-1]) != data_len:
        raise _fail(path, f"{data_len - int(en[-1])} bytes follow the last tensor")


_UINT = r"(?:0|[1-9][0-9]{0,18})"
#: One entry as the safetensors library, MindSpore and mindckpt write it (compact JSON, fields
#: in this order), followed by ``,`` or the closing ``}``.  Names with escapes or control
#: characters, other spacing or field orders take the general path (``json.loads``).
_ENTRY = re.compile(
    r'"([^"\\\x00-\x1f]*)":\{"dtype":"([A-Za-z0-9_]{1,16})","shape":\[((?:' + _UINT
    + r"(?:," + _UINT + r'){0,63})?)\],"data_offsets":\[(' + _UINT + r"),(" + _UINT
    + r")\]\}([,}])")
_META_KEY = '"__metadata__":'
_JSON_SPACE = " \t\n\r"


def _parse_canonical(text: str) -> tuple[dict[str, tuple[str, str, int, int]], Any] | None:
    """``({name: (dtype, shape text, start, end)}, metadata or None)`` of a header in the
    canonical layout, matched entry by entry at C speed; None when any part is not in that
    layout (the caller then parses it as JSON, which also names any damage)."""
    if not text.startswith("{"):
        return None
    out: dict[str, tuple[str, str, int, int]] = {}
    meta: Any = None
    match = _ENTRY.match
    pos = 1
    n = len(text)
    if text.startswith("}", 1):
        return (out, meta) if not text[2:].strip(_JSON_SPACE) else None
    while True:
        m = match(text, pos)
        if m is None:
            if not text.startswith(_META_KEY, pos) or meta is not None:
                return None
            try:
                meta, end = _DECODER.raw_decode(text, pos + len(_META_KEY))
            except (ValueError, RecursionError):
                return None
            if end >= n or text[end] not in ",}":
                return None
            closing = text[end] == "}"
            pos = end + 1
        else:
            name, code, shape, start, stop, sep = m.groups()
            out[name] = (code, shape, int(start), int(stop))
            pos = m.end()
            closing = sep == "}"
        if closing:
            return (out, meta) if not text[pos:].strip(_JSON_SPACE) else None


_DECODER = json.JSONDecoder()


def _parse_json(text: str, path: str) -> tuple[dict[str, tuple[str, list[Any], Any, Any]], Any]:
    """The general path: any valid JSON header, each entry's fields found by name."""
    try:
        header = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise _fail(path, f"the header is not valid JSON ({str(e)[:200]})") from None
    if not isinstance(header, dict):
        raise _fail(path, "the header is not a JSON object")
    meta = header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        try:
            code = info["dtype"]
            shape_l = info["shape"]
            start, end = info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise _fail(path, f"tensor '{name}' lacks dtype, shape or data_offsets") from None
        out[name] = (code, shape_l, start, end)
    return out, meta


def _scan(source: Any, path: str, verify_header: bool, make: Make | None = None,
          select: Callable[[str], bool] | None = None) -> tuple[Index, dict[str, Any]]:
    size = source.size
    n, raw = _read_header(source, path)
    _no_deep_nesting(raw, path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _fail(path, f"the header is not valid JSON ({str(e)[:200]})") from None
    del raw  # one copy of the header at a time
    fast = _parse_canonical(text)
    header: dict[str, tuple[Any, Any, Any, Any]]
    if fast is None:
        header, meta = _parse_json(text, path)
    else:
        header, meta = fast
    meta = meta or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _fail(path, "__metadata__ must map strings to strings")
    data_start = 8 + n
    data_len = size - data_start
    index = Index(format="safetensors", metadata=meta, data_start=data_start, size=size)
    entries = index.entries
    names = sorted(header)
    del text  # the parsed header holds what is needed (memory: files of many entries)
    codes: dict[Any, tuple[T.Type, int] | None] = {}
    int4 = {k for k, v in meta.items() if v == "Int4"}
    pop = header.pop  # each parsed entry is dropped once its IndexEntry is made
    stored = meta.get(HEADER_CRC_KEY) if verify_header else None
    covered: list[tuple[str, str, tuple[int, ...], int, int]] = []  # for HEADER_CRC_KEY
    starts = array("q")
    lengths = array("q")
    values: dict[str, Any] = {}

    def dtype_of(name: str, code: Any) -> tuple[T.Type, int]:
        try:
            known = codes[code]
        except (KeyError, TypeError):
            t = T.dtype_of_st(code) if isinstance(code, str) else None
            known = (t, t.itemsize) if t is not None else None
            if isinstance(code, str):
                codes[code] = known
        if known is None:
            raise _fail(path, f"tensor '{name}' has unsupported dtype {str(code)[:40]!r}")
        return known

    def bad_shape(name: str, shape_w: Any) -> FormatError:
        return _fail(path, f"tensor '{name}' has an invalid shape {str(shape_w)[:200]} "
                           f"(a list of at most {MAX_NDIM} non-negative ints)")

    # canonical path: (dtype code, shape text) -> (dtype, the one shape tuple, bytes), each
    # distinct pair checked once (the pattern has already checked every digit and offset)
    known_pairs: dict[tuple[str, str], tuple[T.Type, tuple[int, ...], int]] = {}
    for name in names:
        code, shape_w, start, end = pop(name)
        if fast is not None:
            pair = (code, cast(str, shape_w))
            try:
                dtype, shape, need = known_pairs[pair]
            except KeyError:
                dtype, itemsize = dtype_of(name, code)
                dims = [int(d) for d in pair[1].split(",")] if pair[1] else []
                got = _check_shape(path, name, dims, itemsize)
                if got is None:
                    raise bad_shape(name, shape_w) from None
                dtype, shape, need = known_pairs[pair] = (dtype, *got)
            ok = start <= end <= data_len
        else:
            dtype, itemsize = dtype_of(name, code)
            got = _check_shape(path, name, shape_w, itemsize) if type(shape_w) is list else None
            if got is None:
                raise bad_shape(name, shape_w)
            shape, need = got
            ok = type(start) is int and type(end) is int and 0 <= start <= end <= data_len
        if not ok:
            raise _fail(path, f"tensor '{name}' has offsets {str([start, end])[:100]} outside "
                              f"the data ({data_len} bytes)")
        if end - start != need:
            raise _fail(path, f"tensor '{name}' spans {end - start} bytes but shape "
                              f"{list(shape)} {code} needs {need}")
        if int4 and name in int4 and dtype is T.int8:
            dtype = T.qint4x2
        starts.append(start)
        lengths.append(end - start)
        if stored is not None:
            covered.append((name, code, shape, start, end))
        if make is None:
            entries[name] = IndexEntry(name, "tensor", dtype, shape,
                                       ((data_start + start, end - start),), code)
        elif select is None or select(name):
            values[name] = make(name, dtype, shape, data_start + start, end - start)
    st = np.frombuffer(starts, np.int64) if len(starts) else np.empty(0, np.int64)
    en = st + (np.frombuffer(lengths, np.int64) if len(lengths) else np.empty(0, np.int64))
    _check_tiling(path, names, st, en, data_len)
    if "crc_num" in meta:
        try:
            index.crc = int(meta["crc_num"])
        except ValueError:
            raise _fail(path, f"crc_num {meta['crc_num'][:40]!r} is not a number") from None
    if stored is not None:
        actual = header_crc(meta, covered)
        if stored != str(actual):
            raise ChecksumError(
                f"For 'load_checkpoint', the safetensors file {path} fails its header check: "
                f"{HEADER_CRC_KEY} is {stored[:40]} but the header's names, dtypes, shapes and "
                f"offsets give {actual}, so a dtype, shape or offset was changed after the file "
                "was written (payload bytes would be read as the wrong type or layout). "
                "Restore the file from a copy."
            )
    return index, values


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
    verify_header: bool = True,
) -> tuple[dict[str, Entry], dict[str, str]]:
    """Read a safetensors file from ``source`` (``size``, ``readinto(view, offset)``).

    Returns ``({name: Entry}, metadata)``, names sorted as MindSpore returns them.  Payloads
    go straight into their arrays; small ones are read a window of about 1 MiB at a time.
    """
    index = scan_safetensors(source, path, verify_header=verify_header)
    chosen = [e for e in index if crc_check or select(e.name)]  # the CRC covers every tensor
    arrays: dict[str, np.ndarray] = {}
    with gc_paused():
        batch: list[IndexEntry] = []
        for e in sorted(chosen, key=lambda x: x.spans[0].offset):
            if e.nbytes >= _BATCH // 16:
                _read_batch(source, path, batch, arrays)
                batch = []
                arr = np.empty(e.shape, dtype=cast(T.Type, e.dtype).np_dtype)
                if source.readinto(arr.reshape(-1).view(np.uint8).data,
                                   e.spans[0].offset) != e.nbytes:
                    raise _fail(path, f"tensor '{e.name}' is cut short")
                arrays[e.name] = arr
                continue
            if batch and e.spans[0].offset + e.nbytes - batch[0].spans[0].offset > _BATCH:
                _read_batch(source, path, batch, arrays)
                batch = []
            batch.append(e)
        _read_batch(source, path, batch, arrays)
        out = {e.name: Entry(cast(T.Type, e.dtype), arrays[e.name]) for e in chosen}
    if crc_check:
        check_crc(path, index, ((k, en.array) for k, en in out.items()))
        out = {k: en for k, en in out.items() if select(k)}
    return out, index.metadata


def _read_batch(source: Any, path: str, batch: list[IndexEntry],
                arrays: dict[str, np.ndarray]) -> None:
    """Read the small payloads of ``batch`` (consecutive in the file) with one read."""
    if not batch:
        return
    lo = batch[0].spans[0].offset
    hi = batch[-1].spans[0].offset + batch[-1].nbytes
    window = bytearray(hi - lo)
    if source.readinto(memoryview(window), lo) != hi - lo:
        raise _fail(path, f"tensor '{batch[-1].name}' is cut short")
    for e in batch:
        np_dtype = cast(T.Type, e.dtype).np_dtype
        if e.nbytes:
            arrays[e.name] = np.frombuffer(window, dtype=np_dtype, count=e.numel,
                                           offset=e.spans[0].offset - lo).reshape(e.shape).copy()
        else:
            arrays[e.name] = np.empty(e.shape, dtype=np_dtype)
