"""MindSpore ``.ckpt`` files: protobuf records, optional CRC trailer.

Byte layout (MindSpore 2.10, checked against the real library)::

    file    := record* [trailer]
    record  := 0a len(value) value                     one serialized ``Checkpoint`` message
    value   := 0a len(tag) tag                         Checkpoint.Value.tag, UTF-8 name
               12 len(tensor) tensor                   Checkpoint.Value.tensor (TensorProto)
    tensor  := (08 varint(dim))*                       dims, one key per dim, none for scalars
               12 len(type) type                       "Float32", "BFloat16", "Int4", "str" ...
               1a len(content) content                 raw little-endian C-order bytes
    trailer := "crc_num" crc32(records) as 10-byte big-endian

* A payload larger than 512 MiB (``SLICE_BYTES``) is written as several consecutive records
  with the same tag and the full dims, its bytes cut every 512 MiB (``split="bytes"``, what a
  synchronous MindSpore save does) or with ``numpy.array_split`` along axis 0 into
  ``ceil(nbytes / 512 MiB)`` parts (``split="rows"``, what MindSpore's async save does).
  A reader joins consecutive records of one tag.
* ``str`` values: dims ``[0]``, type ``str``, content UTF-32-LE (``numpy.array(s).tobytes()``).
* Zero-size tensors: MindSpore writes no record at all (the entry is lost); mindckpt writes one
  record with empty content and reads it back with its shape.
* The reader accepts any valid protobuf encoding of the same schema (packed dims, fields in
  any order, several values per message), as MindSpore does, but unlike MindSpore it checks
  every length against the file, refuses content that does not match its shape and dtype, and
  finds the CRC trailer by structure, so a tensor whose bytes end in ``crc_num`` is no trap.
* Unknown fields (field numbers or wire types outside the schema above) raise
  ``FormatError`` by default (``unknown_fields="error"``): MindSpore 2.10 never writes them,
  and one flipped record-key byte or a garbled CBC block turns a whole record into one, so
  skipping them (what protobuf and MindSpore do) loses tensors without a word.
  ``unknown_fields="skip"`` skips them, for files written by other protobuf tools.
* Speed: records in MindSpore's canonical layout (the one above, every length consistent, the
  record whole in the read-ahead window) take a fast path, one Python loop iteration each,
  with no per-record helper objects; anything else goes through the general parser, which
  handles every valid encoding and names the damage in every invalid one.
* Hostile files: lengths are checked against the file before anything is allocated; shapes
  are checked against numpy's limits (at most 64 dims, no negative dims, ``size * itemsize``
  representable, zero-size tensors included); ``str`` content must be valid UTF-32.  Each
  failure is a ``FormatError`` naming the file, the byte offset and the parameter.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from .. import tensor as T
from ..errors import ChecksumError, FormatError
from ._cursor import ByteReader
from ..codecs.crc import crc32
from .records import Index, IndexEntry, Record, Span
from ._wire import EGROUP, I32, I64, LEN, SGROUP, VARINT, decode_varint, encode_varint

__all__ = [
    "SLICE_BYTES",
    "CRC_MAGIC",
    "UNKNOWN_FIELDS",
    "decode_str",
    "write_ckpt",
    "read_ckpt",
    "scan_ckpt",
    "parse_ckpt",
    "content_view",
    "gc_paused",
    "Entry",
]

SLICE_BYTES = 536_870_912  # 512 MiB
CRC_MAGIC = b"crc_num"
TRAILER_LEN = len(CRC_MAGIC) + 10
_COALESCE = 1 << 20  # small records are gathered into writes of about this size
UNKNOWN_FIELDS = ("error", "skip")  # what the reader does with fields outside the schema
_FAST_MAX_DIM = 1 << 40
_READ_THROUGH = 16 << 10  # payloads below this are read through in windows of:
_READ_THROUGH_WINDOW = 256 << 10  # the fast path takes shapes below this; others go the general way
_MAP_TYPES = {"int32": np.int32, "float32": np.float32, "float16": np.float16, "float64": np.float64}


# --------------------------------------------------------------------------- writing


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while an index of many small entries is built.

    The objects a scan creates hold no cycles, but with a million of them the collector runs
    again and again over all of them (a third of the time per record); it is re-enabled, as
    it was, when the block ends."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def content_view(arr: np.ndarray) -> memoryview:
    """The C-order little-endian bytes of ``arr`` as a flat byte view (copies only if needed)."""
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr.reshape(-1).view(np.uint8).data


def decode_str(raw: bytes | bytearray, path: str, name: str) -> str:
    """A ``str`` entry's UTF-32-LE content as MindSpore reads it (``str(np.frombuffer(raw,
    "<U{n}")[0])``: trailing NULs dropped), refusing what is not UTF-32 with a FormatError."""
    if len(raw) % 4:
        raise FormatError(
            f"Failed to read the checkpoint file {path}: the string entry '{name}' has "
            f"{len(raw)} bytes, not a whole number of UTF-32 units; the file is damaged: "
            "restore it from a copy.")
    try:
        return bytes(raw).decode("utf-32-le", "surrogatepass").rstrip("\x00")
    except UnicodeDecodeError as exc:
        raise FormatError(
            f"Failed to read the checkpoint file {path}: the string entry '{name}' is not "
            f"valid UTF-32 ({exc.reason} at byte {exc.start}); the file is damaged: restore it "
            "from a copy.") from None


def _header(tag: bytes, dims: Iterable[int], type_name: bytes, content_len: int) -> bytes:
    tensor_head = b"".join(b"\x08" + encode_varint(d) for d in dims)
    tensor_head += b"\x12" + encode_varint(len(type_name)) + type_name
    tensor_head += b"\x1a" + encode_varint(content_len)
    tensor_len = len(tensor_head) + content_len
    value_head = b"\x0a" + encode_varint(len(tag)) + tag + b"\x12" + encode_varint(tensor_len)
    value_len = len(value_head) + tensor_len
    return b"\x0a" + encode_varint(value_len) + value_head + tensor_head


def _chunks(arr: np.ndarray, split: str) -> list[memoryview]:
    """The content of one entry cut into records' payloads (MindSpore's two slicing rules)."""
    nbytes = arr.nbytes
    if split == "rows" and arr.ndim > 0 and nbytes / 1024 > 524288:
        k = math.ceil(nbytes / SLICE_BYTES)
        return [content_view(part) for part in np.array_split(arr, k)]
    mv = content_view(arr)
    if nbytes <= SLICE_BYTES:
        return [mv]
    return [mv[i:i + SLICE_BYTES] for i in range(0, nbytes, SLICE_BYTES)]


def _type_name(name: str, arr: np.ndarray, dtype: T.Type | None) -> str:
    if dtype is not None:
        return dtype.name
    t = T.dtype_of_numpy(arr.dtype)
    if t is None:
        raise TypeError(
            f"Cannot save '{name}': numpy dtype {arr.dtype} has no MindSpore checkpoint type; "
            "convert it to one of " + ", ".join(str(d.np_dtype) for d in T.DTYPES[:13])
        )
    return t.name


class _Coalescer:
    """Gathers small writes into ~1 MiB writes; large payloads go straight through."""

    def __init__(self, sink: Any, crc: bool):
        self.sink = sink
        self.buf = bytearray()
        self.crc = 0 if crc else None
        self.pos = 0  # bytes accepted so far (offset of the next byte in the file)

    def write(self, data: Any) -> None:
        self.pos += memoryview(data).nbytes
        if self.crc is not None:
            self.crc = crc32(data, self.crc)
        if len(data) >= _COALESCE:
            self.flush()
            self.sink.write(data)
            return
        self.buf += data
        if len(self.buf) >= _COALESCE:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.sink.write(self.buf)
            self.buf = bytearray()


def write_ckpt(
    sink: Any,
    records: Iterable[Record],
    *,
    crc: bool = False,
    split: str = "bytes",
) -> Index:
    """Write ``records`` (:class:`Record`: name, ndarray | torch.Tensor | str, dtype override)
    as a ``.ckpt`` body to ``sink`` (its ``write`` takes every byte it is given).

    Returns the :class:`Index` of what was written: each entry with its payload spans.
    """
    w = _Coalescer(sink, crc)
    index = Index(format="ckpt")
    for name, value, override in records:
        tag = name.encode("utf-8")
        if isinstance(value, str):
            payload = np.array(value).tobytes()
            w.write(_header(tag, (0,), b"str", len(payload)))
            span = Span(w.pos, len(payload))
            w.write(payload)
            index.entries[name] = IndexEntry(name, "str", None, (), (span,), T.STR_TYPE_NAME)
            continue
        arr = value if isinstance(value, np.ndarray) else T.to_numpy(value)
        type_name = _type_name(name, arr, override)
        dims = arr.shape
        spans = []
        for chunk in _chunks(arr, split):
            w.write(_header(tag, dims, type_name.encode(), len(chunk)))
            spans.append(Span(w.pos, len(chunk)))
            if len(chunk):
                w.write(chunk)
        index.entries[name] = IndexEntry(name, "tensor", override or T.dtype_of_name(type_name),
                                         tuple(dims), tuple(spans), type_name)
    if crc:
        index.crc = cast(int, w.crc)
        w.write(CRC_MAGIC + index.crc.to_bytes(10, "big"))
    w.flush()
    index.size = w.pos
    return index


# --------------------------------------------------------------------------- reading


@dataclass(slots=True)
class Entry:
    """One tensor read from a file: its MindSpore dtype and its array."""

    dtype: T.Type
    array: np.ndarray


@dataclass
class _Run:
    """A tensor being filled from one or more consecutive records."""

    tag: str
    type_name: str
    dims: tuple[int, ...]
    dtype: T.Type | None  # None for str
    array: np.ndarray | None
    flat: memoryview | None
    nbytes: int
    filled: int = 0
    text: bytearray | None = None  # str payloads


MAX_NDIM = 64  # numpy's limit; more is a damaged file
_MAX_DIM = 1 << 62


@dataclass
class _Noted:
    """The index entry being built from consecutive records of one tag."""

    tag: str
    type_name: str
    dims: tuple[int, ...]
    spans: list[Span]


class _Parser:
    def __init__(self, r: ByteReader, path: str, select: Callable[[str], bool],
                 unknown_fields: str = "error"):
        if unknown_fields not in UNKNOWN_FIELDS:
            raise ValueError(f"unknown_fields must be one of {UNKNOWN_FIELDS}, got "
                             f"{unknown_fields!r}")
        self.r = r
        self.path = path
        self.select = select
        self.skip_unknown = unknown_fields == "skip"
        self._types: dict[bytes, tuple[str, T.Type | None] | None] = {}
        self._shapes: dict[tuple[int, ...], tuple[int, ...]] = {}
        self.out: dict[str, Any] = {}
        self.run: _Run | None = None
        self._selected: dict[str, bool] = {}
        self.index = Index(format="ckpt")
        self._noted: _Noted | None = None

    # -- errors
    def fail(self, what: str, tag: str | None = None, fix: str | None = None) -> FormatError:
        where = f", parameter '{tag}'" if tag is not None else ""
        fix = fix or (
            "The file is truncated or damaged: restore it from a copy, or re-save it."
        )
        return FormatError(
            f"Failed to read the checkpoint file {self.path}. The file may be corrupted, and the "
            f"content cannot be parsed: {what} (at byte {self.r.pos}{where}). {fix}"
        )

    # -- primitive reads
    def varint(self) -> int:
        head = self.r.peek(10)
        try:
            value, n = decode_varint(head, 0)
        except (IndexError, ValueError):
            raise self.fail("a varint runs past the end of the file or is longer than 10 bytes") from None
        self.r.read(n)
        return value

    def exact(self, n: int, what: str, tag: str | None = None) -> bytes:
        if n > self.r.remaining_bound():
            raise self.fail(f"{what} claims {n} bytes but the file has fewer left", tag)
        data = self.r.read(n)
        if len(data) != n:
            raise self.fail(f"{what} is cut short ({len(data)} of {n} bytes)", tag)
        return data

    def unknown(self, key: int, key_pos: int, end: int | None, where: str,
                tag: str | None = None) -> None:
        """A field outside the schema at ``key_pos``: raise, or skip it (``unknown_fields``)."""
        if not self.skip_unknown:
            hint = ""
            if where == "file":
                where, hint = "the file's top level", " (where a record key 0a belongs)"
            raise FormatError(
                f"Failed to read the checkpoint file {self.path}: unknown protobuf field "
                f"{key >> 3} (wire type {key & 7}) in {where} at byte {key_pos}{hint}"
                + (f", parameter '{tag}'" if tag is not None else "")
                + ". MindSpore 2.10 never writes such fields: the file is damaged (a flipped "
                "byte, a garbled encrypted block) and skipping the field would drop what it "
                "holds. Restore the file from a copy; to load what can be read anyway, pass "
                "unknown_fields='skip' (the skipped bytes are lost)."
            )
        self.skip_field(key & 7, end, tag)

    def skip_field(self, wire: int, end: int | None, tag: str | None = None) -> None:
        if wire == VARINT:
            self.varint()
        elif wire == I64:
            self.exact(8, "a fixed64 field", tag)
        elif wire == I32:
            self.exact(4, "a fixed32 field", tag)
        elif wire == LEN:
            n = self.varint()
            self.check_within(n, end, "an unknown field", tag)
            if self.r.skip(n) != n:
                raise self.fail("an unknown field is cut short", tag)
        else:
            raise self.fail(f"unsupported protobuf wire type {wire}", tag)

    def check_within(self, n: int, end: int | None, what: str, tag: str | None = None) -> None:
        if end is not None and self.r.pos + n > end:
            raise self.fail(f"{what} of {n} bytes overruns its enclosing message", tag)
        if n > self.r.remaining_bound():
            raise self.fail(f"{what} claims {n} bytes but the file has fewer left", tag)

    def wanted(self, tag: str) -> bool:
        got = self._selected.get(tag)
        if got is None:
            got = self._selected[tag] = bool(self.select(tag))
        return got

    # -- the index
    def check_shape(self, dims: tuple[int, ...], tag: str | None, itemsize: int = 16) -> None:
        """numpy's limits, zero-size shapes included (numpy multiplies the non-zero dims)."""
        if len(dims) > MAX_NDIM:
            raise self.fail(f"a tensor has {len(dims)} dimensions, more than {MAX_NDIM}", tag)
        if any(d >= 1 << 63 for d in dims):
            shown = tuple(d - (1 << 64) if d >= 1 << 63 else d for d in dims)
            raise self.fail(f"negative dimension in shape {shown}", tag)
        if any(d > _MAX_DIM for d in dims) or \
                math.prod(d for d in dims if d) * itemsize > _MAX_DIM:
            raise self.fail(f"shape {dims[:MAX_NDIM]} is impossibly large", tag)

    def note(self, tag: str, type_name: str, dims: tuple[int, ...], offset: int, n: int) -> None:
        """Add one record's payload span to the index (consecutive records of a tag join)."""
        cur = self._noted
        if cur is not None and cur.tag == tag and cur.type_name == type_name and cur.dims == dims:
            cur.spans.append(Span(offset, n))
            return
        self.finish_note()
        t = T.dtype_of_name(type_name)
        self.check_shape(dims, tag, t.itemsize if t is not None else 4)
        self._noted = _Noted(tag, type_name, dims, [Span(offset, n)])

    def finish_note(self) -> None:
        cur, self._noted = self._noted, None
        if cur is None:
            return
        total = sum(sp.length for sp in cur.spans)
        spans = tuple(sp for sp in cur.spans if sp.length) or tuple(cur.spans[:1])
        if cur.type_name == T.STR_TYPE_NAME:
            if total % 4:
                raise self.fail("a string's content is not a whole number of UTF-32 units",
                                cur.tag)
            entry = IndexEntry(cur.tag, "str", None, (), spans, cur.type_name)
        else:
            dtype = T.dtype_of_name(cur.type_name)
            if dtype is None:
                raise self.fail(
                    f"unknown tensor type {cur.type_name!r}", cur.tag,
                    "mindckpt reads Float16/32/64, BFloat16, Int8-64, UInt8-64, Bool, Int4 and "
                    "str; convert this tensor before saving it.",
                )
            shape = cur.dims
            if shape == (0,) and total == dtype.itemsize:
                shape = ()  # MindSpore reads dims [0] as a scalar
            need = math.prod(shape) * dtype.itemsize
            if total != need:
                raise self.fail(
                    f"content is {total} bytes but shape {shape} {cur.type_name} needs {need}",
                    cur.tag)
            entry = IndexEntry(cur.tag, "tensor", dtype, shape, spans, cur.type_name)
        self.index.entries[cur.tag] = entry  # a repeated name: first place, last value

    # -- structure
    def parse(self) -> tuple[dict[str, Any], int | None]:
        """Parse the whole body; return the entries and the stored CRC (None if no trailer)."""
        r = self.r
        while True:
            if r.at_eof():
                self.finish_run()
                self.finish_note()
                return self.out, None
            if r.peek(1) == b"c":
                self.finish_run()
                self.finish_note()
                body_crc = r.crc
                r.track_crc = False
                trailer = r.read(TRAILER_LEN)
                if len(trailer) != TRAILER_LEN or not trailer.startswith(CRC_MAGIC):
                    raise self.fail("bytes after the last record are neither a record nor a CRC trailer")
                if not r.at_eof():
                    raise self.fail("bytes follow the CRC trailer")
                r.crc = body_crc
                return self.out, int.from_bytes(trailer[len(CRC_MAGIC):], "big")
            if self.fast():
                continue
            kpos = r.pos
            k = self.varint()
            field, wire = k >> 3, k & 7
            if field == 1 and wire == LEN:
                n = self.varint()
                self.check_within(n, None, "a record")
                self.value(r.pos + n)
            elif wire in (SGROUP, EGROUP):
                raise self.fail("bytes after the last record are neither a record nor a CRC trailer")
            else:
                self.unknown(k, kpos, None, "file")

    def _type(self, raw: bytes) -> tuple[str, T.Type | None] | None:
        """``(type name, dtype)`` of a stored type (dtype None for str); None if unknown."""
        try:
            return self._types[raw]
        except KeyError:
            pass
        name = raw.decode("utf-8", "replace")
        dtype = T.dtype_of_name(name)
        got = (name, dtype) if dtype is not None or name == T.STR_TYPE_NAME else None
        self._types[raw] = got
        return got

    def fast(self) -> bool:
        """Consume the records ahead that are in MindSpore's canonical layout (see the module
        doc); return whether any was.  Whatever it does not recognise (another field order, a
        sliced tensor, a repeated name, a damaged length, the trailer) it leaves at the cursor
        for the general parser, which handles it and names any damage."""
        r = self.r
        last = self._noted.tag if self._noted is not None else None
        entries = self.index.entries
        out = self.out
        select = self.select
        path = self.path
        positional = r.fd is not None
        types = self._types
        shapes = self._shapes
        done_any = False
        rec: tuple[str, str, tuple[int, ...], int, int, Any, Any] | None = None
        want = 0  # window size: grows when payloads are small (reading through beats seeking)
        while True:
            buf, i = r.window(want)
            n = len(buf)
            base = r.window_start()
            start = i
            refill = False
            while i < n:
                # one-byte varints inline (the common case), longer ones through decode_varint
                try:
                    if buf[i] != 0x0A:
                        break
                    vlen = buf[i + 1]
                    if vlen < 0x80:
                        j = i + 2
                    else:
                        vlen, j = decode_varint(buf, i + 1)
                    vend = j + vlen
                    if buf[j] != 0x0A:
                        break
                    tlen = buf[j + 1]
                    if tlen < 0x80:
                        j += 2
                    else:
                        tlen, j = decode_varint(buf, j + 1)
                    tag_b = buf[j:j + tlen]
                    j += tlen
                    if buf[j] != 0x12:
                        break
                    xlen = buf[j + 1]
                    if xlen < 0x80:
                        j += 2
                    else:
                        xlen, j = decode_varint(buf, j + 1)
                    if j + xlen != vend:
                        break
                    dims_l = []
                    while buf[j] == 0x08:
                        d = buf[j + 1]
                        if d < 0x80:
                            j += 2
                        else:
                            d, j = decode_varint(buf, j + 1)
                            if d >= _FAST_MAX_DIM:
                                raise ValueError
                        dims_l.append(d)
                    if buf[j] != 0x12:
                        break
                    ylen = buf[j + 1]
                    type_b = bytes(buf[j + 2:j + 2 + ylen])
                    j += 2 + ylen
                    if ylen >= 0x80 or buf[j] != 0x1A:
                        break
                    clen = buf[j + 1]
                    if clen < 0x80:
                        j += 2
                    else:
                        clen, j = decode_varint(buf, j + 1)
                except (IndexError, ValueError):
                    break
                if j + clen != vend or len(dims_l) > MAX_NDIM or len(tag_b) != tlen:
                    break
                try:
                    tag = tag_b.decode("utf-8")
                except UnicodeDecodeError:
                    break
                if tag == last:
                    break  # a slice or a repeat: the general parser joins or refuses it
                typ = types[type_b] if type_b in types else self._type(type_b)
                if typ is None:
                    break
                type_name, dtype = typ
                in_window = vend <= n
                offset = base + j
                if not in_window and (not positional or offset + clen > r.size):
                    break
                dims = tuple(dims_l)
                dims = shapes.setdefault(dims, dims)  # one tuple per distinct shape
                if dtype is None:  # str
                    if clen & 3 or not in_window:
                        break
                    if not done_any and (self._noted is not None or self.run is not None):
                        self.finish_run()
                        self.finish_note()
                    wanted = bool(select(tag))
                    payload = buf[j:vend]
                    entries[tag] = IndexEntry(tag, "str", None, (), ((offset, clen),),
                                              type_name)
                    if wanted:
                        out[tag] = decode_str(payload, path, tag)
                    rec = (tag, type_name, dims, offset, clen, wanted, payload)
                    done_any = True
                    last = tag
                    i = vend
                    continue
                itemsize = dtype.itemsize
                shape = () if dims == (0,) and clen == itemsize else dims
                numel = 1
                for d in shape:
                    numel *= d
                if numel * itemsize != clen:
                    break  # a slice of a larger tensor, or damage: the general parser says which
                if not done_any and (self._noted is not None or self.run is not None):
                    self.finish_run()
                    self.finish_note()
                wanted = bool(select(tag))
                entries[tag] = IndexEntry(tag, "tensor", dtype, shape, ((offset, clen),),
                                          type_name)
                arr = None
                if in_window:
                    i = vend
                    if wanted:
                        if numel:
                            arr = np.frombuffer(buf, dtype=dtype.np_dtype, count=numel,
                                                offset=j).reshape(shape).copy()
                        else:
                            arr = np.empty(shape, dtype=dtype.np_dtype)
                else:
                    r.consume_to(j)
                    refill = True
                    if clen < _READ_THROUGH:
                        want = _READ_THROUGH_WINDOW
                    if wanted:
                        arr = np.empty(shape, dtype=dtype.np_dtype)
                        if r.readinto(arr.reshape(-1).view(np.uint8).data) != clen:
                            raise self.fail("tensor content is cut short", tag)
                    elif r.skip(clen) != clen:
                        raise self.fail("tensor content is cut short", tag)
                if wanted:
                    out[tag] = Entry(dtype, cast(np.ndarray, arr))
                rec = (tag, type_name, dims, offset, clen, wanted, arr)
                done_any = True
                last = tag
                if refill:
                    break
            if not refill:
                if i == start:
                    break
                r.consume_to(i)
        if rec is not None:
            self._reopen(*rec)
        return done_any

    def _reopen(self, tag: str, type_name: str, dims: tuple[int, ...], offset: int, clen: int,
                wanted: bool, value: Any) -> None:
        """Leave the last fast record open, as the general parser would have, so that a slice
        or repeat right after it is joined or refused by the same rules."""
        self._noted = _Noted(tag, type_name, dims, [Span(offset, clen)])
        self._selected[tag] = wanted
        if not wanted:
            return
        if type_name == T.STR_TYPE_NAME:
            self.run = _Run(tag, type_name, dims, None, None, None, 0, text=bytearray(value))
            return
        arr = cast(np.ndarray, value)
        dtype = cast(T.Type, T.dtype_of_name(type_name))
        flat = arr.reshape(-1).view(np.uint8).data if arr.nbytes else None
        self.run = _Run(tag, type_name, dims, dtype, arr, flat, arr.nbytes, filled=arr.nbytes)

    def value(self, end: int) -> None:
        r = self.r
        tag: str | None = None
        pending: tuple[str, tuple[int, ...], bytes, int] | None = None  # tensor before its tag
        while r.pos < end:
            kpos = r.pos
            k = self.varint()
            field, wire = k >> 3, k & 7
            if field == 1 and wire == LEN:
                n = self.varint()
                self.check_within(n, end, "a parameter name")
                raw = self.exact(n, "a parameter name")
                try:
                    tag = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise self.fail(f"a parameter name is not valid UTF-8: {raw[:40]!r}") from None
            elif field == 2 and wire == LEN:
                n = self.varint()
                self.check_within(n, end, "a tensor", tag)
                if tag is None:
                    pending = self.tensor_buffered(r.pos + n)
                else:
                    self.tensor(r.pos + n, tag)
            elif field == 3 and wire == LEN:
                n = self.varint()
                self.check_within(n, end, "a map tensor", tag)
                self.map_tensor(r.pos + n, tag)
            else:
                self.unknown(k, kpos, end, "a record", tag)
        if r.pos != end:
            raise self.fail("a record's fields overrun its length", tag)
        if pending is not None:
            if tag is None:
                raise self.fail("a record has a tensor but no name")
            type_name, dims, content, offset = pending
            self.content(tag, type_name, dims, len(content), content, offset)
        elif tag is None:
            raise self.fail("a record has no name")

    def tensor_header(self, end: int, tag: str | None) -> tuple[list[int], str | None, int | None]:
        """Parse TensorProto fields up to its content; return dims, type, content length."""
        r = self.r
        dims: list[int] = []
        type_name: str | None = None
        while r.pos < end:
            kpos = r.pos
            k = self.varint()
            field, wire = k >> 3, k & 7
            if field == 1 and wire == VARINT:
                dims.append(self.varint())
            elif field == 1 and wire == LEN:  # packed dims
                n = self.varint()
                self.check_within(n, end, "packed dims", tag)
                stop = r.pos + n
                while r.pos < stop:
                    dims.append(self.varint())
            elif field == 2 and wire == LEN:
                n = self.varint()
                self.check_within(n, end, "a tensor type", tag)
                type_name = self.exact(n, "a tensor type", tag).decode("utf-8", "replace")
            elif field == 3 and wire == LEN:
                n = self.varint()
                self.check_within(n, end, "tensor content", tag)
                return dims, type_name, n
            else:
                self.unknown(k, kpos, end, "a tensor", tag)
        return dims, type_name, None

    def tensor(self, end: int, tag: str) -> None:
        dims, type_name, n = self.tensor_header(end, tag)
        if n is None:
            raise self.fail("a tensor has no content field", tag)
        if self.r.pos + n == end and type_name is not None:
            self.content(tag, type_name, tuple(dims), n, None, self.r.pos)
            return
        # unusual field order: content before the type or dims; buffer this one record
        offset = self.r.pos
        content = self.exact(n, "tensor content", tag)
        more_dims, more_type, extra = self.tensor_header(end, tag)
        if extra is not None:
            raise self.fail("a tensor has two content fields", tag)
        type_name = more_type or type_name
        if type_name is None:
            raise self.fail("a tensor has no type", tag)
        self.content(tag, type_name, tuple(dims + more_dims), n, content, offset)

    def tensor_buffered(self, end: int) -> tuple[str, tuple[int, ...], bytes, int]:
        dims, type_name, n = self.tensor_header(end, None)
        if n is None:
            raise self.fail("a tensor has no content field")
        offset = self.r.pos
        content = self.exact(n, "tensor content")
        more_dims, more_type, _ = self.tensor_header(end, None)
        type_name = more_type or type_name
        if type_name is None:
            raise self.fail("a tensor has no type")
        return type_name, tuple(dims + more_dims), content, offset

    def content(
        self, tag: str, type_name: str, dims: tuple[int, ...], n: int, data: bytes | None,
        offset: int,
    ) -> None:
        """Route ``n`` content bytes (in the file at the cursor, or ``data``) to their entry."""
        r = self.r
        self.note(tag, type_name, dims, offset, n)
        run = self.run
        if run is not None and run.tag != tag:
            self.finish_run()
            run = None
        if not self.wanted(tag):
            if data is None and r.skip(n) != n:
                raise self.fail("tensor content is cut short", tag)
            return
        if type_name == T.STR_TYPE_NAME:
            payload = data if data is not None else self.exact(n, "string content", tag)
            if run is not None and run.text is not None:
                run.text += payload
            else:
                self.finish_run()
                self.run = _Run(tag, type_name, dims, None, None, None, 0, text=bytearray(payload))
            return
        dtype = T.dtype_of_name(type_name)
        if dtype is None:
            raise self.fail(
                f"unknown tensor type {type_name!r}", tag,
                "mindckpt reads Float16/32/64, BFloat16, Int8-64, UInt8-64, Bool, Int4 and str; "
                "convert this tensor before saving it.",
            )
        if run is not None and (run.text is None) and run.filled < run.nbytes:
            # continuation of a sliced tensor
            if dims != run.dims or type_name != run.type_name:
                raise self.fail(
                    f"a slice has shape {dims} {type_name} but the tensor started as "
                    f"{run.dims} {run.type_name}", tag)
            if run.filled + n > run.nbytes:
                raise self.fail(
                    f"slices hold more bytes than shape {run.dims} {type_name} needs "
                    f"({run.filled + n} > {run.nbytes})", tag)
            self.fill(run, n, data)
            return
        if run is not None and run.text is None and n == 0 and dims == run.dims:
            return  # an empty trailing slice (MindSpore's async save of a (1, N) tensor)
        if run is not None:
            raise self.fail("a record repeats a complete tensor right after it", tag)
        shape = dims
        if dims == (0,) and n == dtype.itemsize:
            shape = ()  # MindSpore reads dims [0] as a scalar
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > n + max(0, self.r.remaining_bound() - (0 if data is not None else n)):
            raise self.fail(
                f"shape {shape} {type_name} needs {nbytes} bytes but the file has only "
                f"{n + max(0, self.r.remaining_bound() - n)} left", tag)
        if n > nbytes:
            raise self.fail(
                f"content is {n} bytes but shape {shape} {type_name} needs {nbytes}", tag)
        arr = np.empty(shape, dtype=dtype.np_dtype)
        flat = arr.reshape(-1).view(np.uint8).data if nbytes else None
        self.run = _Run(tag, type_name, dims, dtype, arr, flat, nbytes)
        self.fill(self.run, n, data)

    def fill(self, run: _Run, n: int, data: bytes | None) -> None:
        if n == 0:
            return
        dst = run.flat[run.filled:run.filled + n]  # type: ignore[index]
        if data is not None:
            dst[:] = data
        elif self.r.readinto(dst) != n:
            raise self.fail("tensor content is cut short", run.tag)
        run.filled += n

    def finish_run(self) -> None:
        run, self.run = self.run, None
        if run is None:
            return
        if run.text is not None:
            if len(run.text) % 4:
                raise self.fail("a string's content is not a whole number of UTF-32 units", run.tag)
            self.out[run.tag] = decode_str(run.text, self.path, run.tag)
            return
        if run.filled != run.nbytes:
            raise self.fail(
                f"content is {run.filled} bytes but shape {run.dims} {run.type_name} needs "
                f"{run.nbytes}", run.tag)
        self.out[run.tag] = Entry(cast(T.Type, run.dtype), cast(np.ndarray, run.array))

    def map_tensor(self, end: int, tag: str | None) -> None:
        r = self.r
        parts: list[np.ndarray] = []
        while r.pos < end:
            kpos = r.pos
            k = self.varint()
            field, wire = k >> 3, k & 7
            if field == 1 and wire == LEN:
                n = self.varint()
                self.check_within(n, end, "a map tensor part", tag)
                type_name, dims, content, _offset = self.tensor_buffered(r.pos + n)
                np_t = _MAP_TYPES.get(type_name)
                if np_t is None:
                    raise self.fail(f"unknown map tensor type {type_name!r}", tag)
                dt = np.dtype(np_t).newbyteorder("<")
                self.check_shape(dims, tag, dt.itemsize)
                if len(content) != math.prod(dims) * dt.itemsize:
                    raise self.fail(f"map tensor part of {len(content)} bytes does not match "
                                    f"its shape {dims}", tag)
                parts.append(np.frombuffer(content, dtype=dt).reshape(dims).copy())
            else:
                self.unknown(k, kpos, end, "a map tensor", tag)
        if tag is None:
            raise self.fail("a map tensor has no name")
        self.finish_run()
        self.finish_note()
        self.index.entries[tag] = IndexEntry(tag, "map", None, (len(parts),), (), "map")
        if not self.wanted(tag):
            return
        prev = self.out.get(tag)
        if isinstance(prev, list) and len(prev) == len(parts) and list(self.out)[-1] == tag:
            parts = [np.concatenate([a, b]) for a, b in zip(prev, parts, strict=False)]
        self.out[tag] = parts


def read_ckpt(
    reader: ByteReader,
    path: str,
    select: Callable[[str], bool] = lambda _name: True,
    *,
    crc_check: bool = False,
    unknown_fields: str = "error",
) -> dict[str, Entry | str | list]:
    """Parse a plain ``.ckpt`` body from ``reader``; keep the names ``select`` accepts.

    Returns ``{name: Entry | str | list}`` in file order.  With ``crc_check`` the reader must
    track the CRC (``ByteReader(track_crc=True)``); a missing or wrong trailer raises
    ``ChecksumError``.  ``unknown_fields``: ``"error"`` (default) or ``"skip"`` (module doc).
    """
    return parse_ckpt(reader, path, select, crc_check=crc_check,
                      unknown_fields=unknown_fields)[0]


def scan_ckpt(reader: ByteReader, path: str, *, crc_check: bool = False,
              unknown_fields: str = "error") -> Index:
    """The :class:`Index` of a ``.ckpt`` body: names, types, shapes and payload spans.

    Over a positional source no payload byte is read (record headers only), unless
    ``crc_check`` asks for the CRC, which covers every byte.  Every length is checked as in
    :func:`read_ckpt`.
    """
    return parse_ckpt(reader, path, lambda _n: False, crc_check=crc_check,
                      unknown_fields=unknown_fields)[1]


def parse_ckpt(
    reader: ByteReader,
    path: str,
    select: Callable[[str], bool],
    *,
    crc_check: bool = False,
    unknown_fields: str = "error",
) -> tuple[dict[str, Entry | str | list], Index]:
    """One pass: the selected entries filled, and the index of all of them."""
    parser = _Parser(reader, path, select, unknown_fields)
    with gc_paused():
        out, stored = parser.parse()
    index = parser.index
    index.crc = stored
    index.size = reader.pos
    if crc_check:
        if stored is None:
            raise ChecksumError(
                f"For 'load_checkpoint', the ckpt file {path} does not contain a crc code, so "
                "crc_check=True cannot verify it (it may be truncated, or it was saved without "
                "crc_check). Load it with crc_check=False if you trust it."
            )
        if stored != reader.crc:
            raise ChecksumError(
                f"For 'load_checkpoint', the crc check is failed, please check whether the ckpt "
                f"file is damaged: {path} stores crc {stored} but its content has crc "
                f"{reader.crc}. Restore the file from a copy."
            )
    return out, index
