"""The single-file pipeline: one writer and one reader that every caller goes through.

Save: records -> format (``.ckpt`` or safetensors) -> codecs (CRC, encryption) -> store::

    write_file(store, key, records, fmt=..., crc_check=..., enc_key=..., enc_mode=...)
        -> WriteResult(target, format, index, bytes_written)

Load: store -> sniff (format, cipher) -> decrypt -> scan -> select -> read::

    with open_file(store, key, dec_key=..., crc_check=...) as reader:
        reader.index                      # names, dtypes, shapes, spans; no payload read
        reader.read(select)               # the selected entries, one pass over the file
        reader.read_entry(name)           # one entry: only its bytes are read
        reader.read_region(name, box)     # a box of one tensor: only the bytes inside it

``save_checkpoint``, ``load_checkpoint``, the converters, the CLI and the distributed code call
these; formats see only sinks, sources and records.

What a scan costs: plain ``.ckpt`` and safetensors: headers and record tags only (a few KiB for
thousands of tensors).  ``crc_check=True`` reads every byte once (the CRC covers them all).
Encrypted ``.ckpt``: the records are inside the ciphertext, so a scan decrypts the whole file
once (at the cipher's speed, with the plaintext streamed through a bounded buffer, not kept);
after that ``read_entry``/``read_region`` decrypt only the blocks that hold the bytes asked for.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from . import tensor as T
from .adapters.torch import is_torch_tensor
from .codecs.crc import crc32, crc32_parallel
from .errors import ChecksumError, DecryptionError, FormatError
from .formats import ckpt as _ckpt
from .formats import safetensors as _st
from .formats._cursor import ByteReader
from .formats.ckpt import Entry
from .formats.records import Index, IndexEntry, Record
from .storage.base import ByteSource, Store

__all__ = [
    "FORMATS",
    "format_from_name",
    "WriteResult",
    "write_file",
    "check_records",
    "CheckpointReader",
    "open_file",
]

logger = logging.getLogger("mindckpt")

FORMATS = ("ckpt", "safetensors")
_CRC_PIECE = 8 << 20
_SCAN_READAHEAD = 512  # bytes read per record header during a scan

#: Whether loads map the file by default (see ``CheckpointReader.read``), per format.  Chosen
#: from benchmarks/bench_load.py (1 GiB, fresh process, every page touched): a mapped .ckpt
#: load is ready in 0.05 s against 1.1 s for reading into fresh arrays (their page faults),
#: allocates nothing, and a following matmul on its unaligned arrays costs the same.
DEFAULT_MMAP = {"safetensors": True, "ckpt": True}

#: ``wrap(array, dtype, name)``: what :meth:`CheckpointReader.read` makes of each tensor.
Wrap = Callable[[np.ndarray, T.Type, str], Any]


def _as_entry(array: np.ndarray, dtype: T.Type, name: str) -> Entry:
    return Entry(dtype, array)


def format_from_name(name: str) -> str | None:
    """``"ckpt"`` or ``"safetensors"`` from a file name's suffix, else None."""
    for fmt in FORMATS:
        if name.endswith("." + fmt):
            return fmt
    return None


# --------------------------------------------------------------------------- write


@dataclass(frozen=True)
class WriteResult:
    """What a save wrote: where, in which format, the index (with offsets), how many bytes."""

    target: str
    format: str
    index: Index
    bytes_written: int


def check_records(records: list[Record], fmt: str, target: str) -> None:
    """Refuse, before any byte is written, the values the format cannot hold (naming them)."""
    for name, value, override in records:
        if isinstance(value, str):
            if fmt == "safetensors":
                raise TypeError(
                    f"Cannot save '{name}' to {target} as safetensors: str values are not "
                    "supported by the safetensors format (MindSpore fails with 'Unknown dtype "
                    "\"str32\"'); save it with format='ckpt' or drop it."
                )
            continue
        if is_torch_tensor(value):
            if value.is_sparse or getattr(value, "layout", None) is not None and str(
                    value.layout) != "torch.strided":
                raise TypeError(
                    f"Cannot save '{name}' to {target}: it is a sparse torch tensor "
                    f"({value.layout}); convert it with .to_dense() first."
                )
            if value.device.type == "meta":
                raise TypeError(
                    f"Cannot save '{name}' to {target}: it is a tensor on the 'meta' device, "
                    "which holds no data; materialize the module (e.g. to_empty() and load or "
                    "initialize its weights) before saving."
                )
            t = T.dtype_of_torch(value.dtype)
        elif isinstance(value, np.ndarray):
            t = T.dtype_of_numpy(value.dtype)
        else:
            raise TypeError(f"Cannot save '{name}' to {target}: unsupported value "
                            f"{type(value).__name__}.")
        t = override or t
        if t is None:
            raise TypeError(
                f"Cannot save '{name}' to {target}: dtype {value.dtype} has no MindSpore "
                "checkpoint type; convert it to one of "
                + ", ".join(d.name for d in T.DTYPES[:13]) + "."
            )
        if fmt == "safetensors" and t.st_code is None:
            raise TypeError(f"Cannot save '{name}' to {target} as safetensors: dtype {t} has no "
                            "safetensors code.")


def write_file(
    store: Store,
    key: str,
    records: list[Record],
    *,
    fmt: str = "ckpt",
    crc_check: bool = False,
    enc_key: bytes | None = None,
    enc_mode: str = "AES-GCM",
    remove_redundancy: bool | None = None,
    split: str = "bytes",
    durable: bool | None = None,
    progress: Callable[[int], Any] | None = None,
) -> WriteResult:
    """Write ``records`` to ``key`` in ``store`` atomically; return what was written.

    ``progress``, when given, is called with the number of bytes of each write as it goes.
    """
    target = store.describe(key)
    check_records(records, fmt, target)
    with store.open_write(key, durable=durable) as w:
        sink: Any = w if progress is None else _ProgressSink(w, progress)
        if fmt == "safetensors":
            index = _st.write_safetensors(sink, records, crc=crc_check,
                                          remove_redundancy=remove_redundancy)
        elif enc_key is not None:
            from .codecs import crypto

            esink = crypto.EncryptSink(sink, enc_key, enc_mode)
            try:
                index = _ckpt.write_ckpt(esink, records, split=split)
                esink.close()
            except BaseException:
                esink.abort()
                raise
        else:
            index = _ckpt.write_ckpt(sink, records, crc=crc_check, split=split)
    return WriteResult(target, fmt, index, w.bytes_written)


class _ProgressSink:
    def __init__(self, sink: Any, progress: Callable[[int], Any]):
        self.sink = sink
        self.progress = progress

    def write(self, data: Any) -> None:
        self.sink.write(data)
        self.progress(memoryview(data).nbytes)


# --------------------------------------------------------------------------- read


def sniff_format(source: ByteSource) -> tuple[str, str | None]:
    """``(format, cipher)`` from the first bytes: an encryption magic, a safetensors header
    (8-byte length then ``{``), or a ``.ckpt`` body."""
    from .codecs.crypto import sniff_cipher

    head = source.pread(9, 0)
    cipher = sniff_cipher(head[:4])
    if cipher is not None:
        return "ckpt", cipher
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= _st.MAX_HEADER:
        return "safetensors", None
    return "ckpt", None


class CheckpointReader:
    """An open checkpoint file (see the module doc).  Use :func:`open_file`."""

    def __init__(
        self,
        source: ByteSource,
        name: str,
        *,
        format: str | None = None,  # noqa: A002 - MindSpore's keyword
        dec_key: bytes | None = None,
        dec_mode: str | None = "AES-GCM",
        crc_check: bool = False,
        strict_integrity: bool = False,
        unknown_fields: str = "error",
    ):
        self.source = source
        self.strict_integrity = strict_integrity
        self.unknown_fields = unknown_fields
        self.name = name
        self.crc_check = crc_check
        self.dec_key = dec_key
        sniffed, self.cipher = sniff_format(source)
        self.dec_mode: str = dec_mode or self.cipher or "AES-GCM"  # None: the file's own mode
        self.format = format or format_from_name(name) or sniffed
        if self.format == "ckpt":
            if self.cipher is None and dec_key is not None:
                raise DecryptionError(
                    f"Failed to read the checkpoint file {name}: dec_key was given but the file "
                    "is not encrypted (it does not start with an AES-GCM, AES-CBC or SM4-CBC "
                    "block). Load it without dec_key."
                )
            if self.cipher is not None and dec_key is None:
                raise DecryptionError(
                    f"Failed to read the checkpoint file {name}: the file is encrypted with "
                    f"{self.cipher}; pass dec_key=<the key used to save it> and "
                    f"dec_mode='{self.cipher}'."
                )
        self._index: Index | None = None
        self._plain_source: Any = None

    # -- the plaintext
    def _stream(self) -> Any:
        """A fresh decrypting stream over the whole file (encrypted ``.ckpt`` only)."""
        from .codecs import crypto

        return crypto.DecryptSource(self.source, cast(bytes, self.dec_key), self.dec_mode,
                                    path=self.name, require_bound=self.strict_integrity)

    @property
    def plain(self) -> Any:
        """The plaintext as a positional source (the file itself, or decrypted on demand)."""
        if self.cipher is None:
            return self.source
        if self._plain_source is None:
            from .codecs import crypto

            self._plain_source = crypto.DecryptByteSource(
                self.source, cast(bytes, self.dec_key), self.dec_mode, path=self.name,
                require_bound=self.strict_integrity)
        return self._plain_source

    def _parse(self, select: Callable[[str], bool],
               scan: bool = False) -> tuple[dict[str, Any], Index]:
        crc = self.crc_check
        if self.cipher is None or scan:
            advise = getattr(self.source, "advise_sequential", None)
            if advise is not None:
                advise()
            reader = ByteReader(source=self.plain, track_crc=crc,
                                readahead=_SCAN_READAHEAD if scan and not crc else None)
            return _ckpt.parse_ckpt(reader, self.name, select, crc_check=crc,
                                    unknown_fields=self.unknown_fields)
        stream = self._stream()
        try:
            return _ckpt.parse_ckpt(ByteReader(stream=stream, track_crc=crc), self.name,
                                    select, crc_check=crc, unknown_fields=self.unknown_fields)
        finally:
            stream.close()

    # -- the index
    @property
    def index(self) -> Index:
        """The entries (name, dtype, shape, spans), scanned on first use."""
        if self._index is None:
            if self.format == "safetensors":
                self._index = _st.scan_safetensors(self.source, self.name)
                if self.crc_check:
                    self._verify_st_crc(self._index)
            else:
                self._index = self._parse(lambda _n: False, scan=True)[1]
        return self._index

    # -- reads
    def read(self, select: Callable[[str], bool] = lambda _n: True, *,
             mmap: bool | None = None, wrap: Wrap | None = None,
             release: bool = False) -> dict[str, Any]:
        """The entries ``select`` accepts, ``{name: Entry | str | list}``; with ``wrap``,
        tensors are ``wrap(array, dtype, name)`` instead of ``Entry`` (made as they are read,
        one loop over the entries instead of two).  ``release`` (for a caller that reads
        once, as ``load_checkpoint`` does) lets the index go while the result is built, so
        that for files of many small entries the two are not in memory together; a later
        use of this reader scans the file again.

        ``mmap`` (default: :data:`DEFAULT_MMAP` of the format) returns arrays that map the file
        copy-on-write where the source can be mapped (local files, memory): no payload byte is
        copied, writes to an array stay private to the process, and the arrays keep what they
        had when the file is replaced (saves replace files by rename, never in place).
        Otherwise one pass reads each selected payload straight into a new array.
        """
        if mmap is None:
            mmap = DEFAULT_MMAP[self.format]
        if mmap and self.cipher is None:
            mapping = self.source.mapping()
            if mapping is not None:
                got = self._read_mapped(mapping, select, wrap, release)
                if got is not None:
                    return got
        if self.format == "safetensors":
            entries, _meta = _st.read_safetensors(self.source, self.name, select,
                                                  crc_check=self.crc_check)
            out = dict(entries)
        else:
            out, index = self._parse(select)
            self._index = self._index or index
        if wrap is None:
            return out
        return {k: wrap(v.array, v.dtype, k) if type(v) is Entry else v for k, v in out.items()}

    def read_entry(self, name: str) -> np.ndarray | str | list:
        """One entry's value: an array (of its MindSpore dtype's numpy type), str or list."""
        e = self._entry(name)
        if e.kind == "tensor":
            arr = np.empty(e.shape, dtype=cast(T.Type, e.dtype).np_dtype)
            self._fill(e, arr.reshape(-1).view(np.uint8), 0)
            return arr
        if e.kind == "str":
            raw = bytearray(e.nbytes)
            self._fill(e, memoryview(raw), 0)
            return _ckpt.decode_str(raw, self.name, name)
        got = self.read(lambda k: k == name).get(name)
        if isinstance(got, Entry):
            return got.array
        return cast("str | list", got)

    def read_region(self, name: str, box: tuple[tuple[int, int], ...],
                    out: np.ndarray | None = None) -> np.ndarray:
        """``box`` (``(start, stop)`` per dimension) of tensor ``name``: only its bytes read.

        ``out``: an array to fill instead of a new one (C-contiguous, writable, of the box's
        shape and the stored dtype); its runs are read straight into it, exactly the box's
        bytes.  Without ``out``, runs close together are read in one go (at most 5% more
        bytes) into a new array.
        """
        e = self._entry(name)
        if e.kind != "tensor":
            raise FormatError(f"{self.name}: entry '{name}' is a {e.kind}, not a tensor")
        box = _check_box(self.name, e, box)
        dtype = cast(T.Type, e.dtype)
        shape = tuple(b - a for a, b in box)
        if out is not None:
            if tuple(out.shape) != shape or out.dtype != dtype.np_dtype or \
                    not out.flags.c_contiguous or not out.flags.writeable:
                raise ValueError(
                    f"read_region of '{name}' in {self.name}: out must be a writable "
                    f"C-contiguous {dtype.np_dtype} array of shape {shape}, got "
                    f"{out.dtype} {tuple(out.shape)}")
            dst = out.reshape(-1).view(np.uint8)
            pos = 0
            for offset, length in _box_ranges(e.shape, dtype.itemsize, box):
                self._fill(e, dst[pos:pos + length], offset)
                pos += length
            return out
        out = np.empty(shape, dtype=dtype.np_dtype)
        if out.size == 0:
            return out
        dst = out.reshape(-1).view(np.uint8)
        pos = 0
        scratch: bytearray | None = None
        for group in _coalesce(_box_ranges(e.shape, dtype.itemsize, box)):
            if len(group) == 1:
                offset, length = group[0]
                self._fill(e, dst[pos:pos + length], offset)
                pos += length
                continue
            # small runs with small gaps (a column slice): one read, then copy the runs out
            start = group[0][0]
            span = group[-1][0] + group[-1][1] - start
            if scratch is None or len(scratch) < span:
                scratch = bytearray(span)
            view = memoryview(scratch)[:span]
            self._fill(e, view, start)
            for offset, length in group:
                dst[pos:pos + length] = view[offset - start:offset - start + length]
                pos += length
        return out

    # -- internals
    def _read_mapped(self, mapping: memoryview, select: Callable[[str], bool],
                     wrap: Wrap | None, release: bool) -> dict[str, Any] | None:
        """Entries as views of ``mapping``; None when the file needs the parsing path."""
        if release and self.format == "safetensors" and self._index is None and \
                not self.crc_check:
            return self._read_mapped_once(mapping, select, wrap)
        crc = self.crc_check
        self.crc_check = False  # the scan reads headers only; the CRC is taken over the map
        try:
            index = self.index
        finally:
            self.crc_check = crc
        entries = index.entries
        chosen = [name for name in entries if select(name)]
        if any(entries[name].kind == "map" for name in chosen):
            return None
        if crc:
            self._verify_mapped_crc(mapping, index)
        # release: each entry leaves the index as its value is made, so that the index and
        # the result (one Python object each per entry) are not in memory together
        take = entries.pop if release else entries.__getitem__
        if release:
            self._index = None
        out: dict[str, Any] = {}
        make = wrap if wrap is not None else _as_entry
        with _ckpt.gc_paused():  # a million small values: no collections over them meanwhile
            self._make_mapped(mapping, chosen, take, make, out)
        return out

    def _read_mapped_once(self, mapping: memoryview, select: Callable[[str], bool],
                          wrap: Wrap | None) -> dict[str, Any]:
        """A safetensors file read once (``release``): each value made as its header entry
        is checked, with no index in between (files of a million tiny entries)."""
        ndarray, empty = np.ndarray, np.empty
        make = wrap if wrap is not None else _as_entry

        def value(name: str, dtype: T.Type, shape: tuple[int, ...], offset: int,
                  nbytes: int) -> Any:
            arr = ndarray(shape, dtype.np_dtype, mapping, offset) if nbytes else \
                empty(shape, dtype.np_dtype)
            return make(arr, dtype, name)

        _index, out = _st.scan_safetensors_into(self.source, self.name, value, select)
        return out

    def _make_mapped(self, mapping: memoryview, chosen: list[str], take: Callable[[str], Any],
                     make: Wrap, out: dict[str, Any]) -> None:
        ndarray, empty = np.ndarray, np.empty
        for name in chosen:
            e = take(name)
            dtype = e.dtype
            if dtype is None:  # str
                raw = b"".join(bytes(mapping[sp.offset:sp.offset + sp.length]) for sp in e.spans)
                out[name] = _ckpt.decode_str(raw, self.name, name)
                continue
            single = e.extra_spans is None
            if single and e.length:
                arr = ndarray(e.shape, dtype.np_dtype, mapping, e.offset)  # a view
            elif single:
                arr = empty(e.shape, dtype.np_dtype)
            else:  # a tensor cut into several records: join them (one copy)
                arr = empty(e.shape, dtype.np_dtype)
                self._fill(e, arr.reshape(-1).view(np.uint8), 0)
            out[name] = make(arr, dtype, name)

    def _verify_mapped_crc(self, mapping: memoryview, index: Index) -> None:
        if self.format == "safetensors":
            self._verify_st_crc(index, mapping)
            return
        if index.crc is None:
            raise ChecksumError(
                f"For 'load_checkpoint', the ckpt file {self.name} does not contain a crc code, "
                "so crc_check=True cannot verify it (it may be truncated, or it was saved "
                "without crc_check). Load it with crc_check=False if you trust it."
            )
        actual = crc32_parallel(mapping[:index.size - _ckpt.TRAILER_LEN])
        if actual != index.crc:
            raise ChecksumError(
                "For 'load_checkpoint', the crc check is failed, please check whether the ckpt "
                f"file is damaged: {self.name} stores crc {index.crc} but its content has crc "
                f"{actual}. Restore the file from a copy."
            )

    def _verify_st_crc(self, index: Index, mapping: memoryview | None = None) -> None:
        """MindSpore's safetensors crc_num: each payload read once (or CRC'd in the map)."""
        stored = index.metadata.get("crc_num")
        crc = 0
        piece = bytearray(_CRC_PIECE) if mapping is None else None
        for e in sorted(index, key=lambda x: x.name):
            crc = crc32(e.name.encode("utf-8"), crc)
            if e.shape == () and cast(T.Type, e.dtype).kind in ("int", "uint"):
                crc = _st._crc_piece(cast(np.ndarray, self.read_entry(e.name)), crc)
                continue
            if mapping is not None:
                sp = e.spans[0]
                crc = crc32_parallel(mapping[sp.offset:sp.offset + sp.length], crc)
                continue
            for pos in range(0, e.nbytes, _CRC_PIECE):
                n = min(_CRC_PIECE, e.nbytes - pos)
                view = memoryview(cast(bytearray, piece))[:n]
                self._fill(e, view, pos)
                crc = crc32(view, crc)
        if stored is None or str(crc) != stored:
            _st.check_crc(self.name, index, [])  # raises with MindSpore's message
            raise ChecksumError(f"{self.name}: crc_num {stored} does not match the content "
                                f"({crc}); the file is damaged: restore it from a copy.")

    def _entry(self, name: str) -> IndexEntry:
        try:
            return self.index[name]
        except KeyError:
            raise KeyError(
                f"{self.name} has no entry '{name}'; it has {len(self.index)} entries "
                f"(e.g. {', '.join(list(self.index.keys())[:5])})."
            ) from None

    def _fill(self, e: IndexEntry, dst: Any, start: int) -> None:
        """Fill ``dst`` with the entry's payload bytes from byte ``start`` of the payload."""
        want = len(dst)
        done = 0
        skip = start
        for span in e.spans:
            if skip >= span.length:
                skip -= span.length
                continue
            n = min(span.length - skip, want - done)
            got = self.plain.readinto(dst[done:done + n], span.offset + skip)
            if got != n:
                raise FormatError(
                    f"Failed to read the checkpoint file {self.name}: entry '{e.name}' is cut "
                    "short (the file is truncated); restore it from a copy."
                )
            done += n
            skip = 0
            if done == want:
                return
        if done != want:
            raise FormatError(f"{self.name}: entry '{e.name}' has fewer bytes than its shape")

    def close(self) -> None:
        plain, self._plain_source = self._plain_source, None
        if plain is not None and hasattr(plain, "close"):
            plain.close()
        self.source.close()

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _check_box(name: str, e: IndexEntry, box: Any) -> tuple[tuple[int, int], ...]:
    box = tuple(tuple(int(v) for v in b) for b in box)
    if len(box) != len(e.shape) or any(
        len(b) != 2 or not 0 <= b[0] <= b[1] <= d for b, d in zip(box, e.shape, strict=False)
    ):
        raise ValueError(f"{name}: region {box} is not inside tensor '{e.name}' of shape "
                         f"{e.shape}; give one (start, stop) pair per dimension.")
    return cast("tuple[tuple[int, int], ...]", box)


def _box_ranges(shape: tuple[int, ...], itemsize: int,
                box: tuple[tuple[int, int], ...]) -> Iterator[tuple[int, int]]:
    """``(byte offset in the payload, length)`` of each contiguous run of ``box``, in order,
    adjacent runs merged."""
    nd = len(shape)
    if nd == 0:
        yield 0, itemsize
        return
    # the trailing dimensions the box covers fully form contiguous runs
    k = nd
    run = itemsize
    while k > 0 and box[k - 1] == (0, shape[k - 1]):
        k -= 1
        run *= shape[k]
    if k == 0:
        yield 0, run
        return
    # dimension k-1 is partial: a run is box[k-1] rows of `run` bytes
    lo, hi = box[k - 1]
    chunk = (hi - lo) * run
    strides = [0] * nd
    acc = itemsize
    for i in range(nd - 1, -1, -1):
        strides[i] = acc
        acc *= shape[i]
    lead = [range(a, b) for a, b in box[: k - 1]]
    pending: tuple[int, int] | None = None
    for idx in _product(lead):
        off = sum(i * s for i, s in zip(idx, strides, strict=False)) + lo * strides[k - 1]
        if pending is not None and pending[0] + pending[1] == off:
            pending = (pending[0], pending[1] + chunk)
            continue
        if pending is not None:
            yield pending
        pending = (off, chunk)
    if pending is not None:
        yield pending


_GAP = 64 << 10  # runs closer than this may be read in one go ...
_GROUP = 16 << 20  # ... into a scratch buffer of at most this size ...
_OVERREAD = 0.05  # ... as long as the gaps add at most 5% to the bytes asked for


def _coalesce(ranges: Iterator[tuple[int, int]]) -> Iterator[list[tuple[int, int]]]:
    """Group ``(offset, length)`` runs separated by small gaps into one read each, reading
    at most 5% more than asked (resharding loads promise to read about their own bytes)."""
    group: list[tuple[int, int]] = []
    useful = 0
    for off, length in ranges:
        if group:
            g_start = group[0][0]
            g_end = group[-1][0] + group[-1][1]
            span = off + length - g_start
            if (off - g_end > _GAP or span > _GROUP or length >= _GAP
                    or span - useful - length > _OVERREAD * (useful + length)):
                yield group
                group, useful = [], 0
        group.append((off, length))
        useful += length
        if length >= _GAP:  # a large run goes straight into the destination
            yield group
            group, useful = [], 0
    if group:
        yield group


def _product(ranges: list[range]) -> Iterator[tuple[int, ...]]:
    import itertools

    if not ranges:
        yield ()
        return
    yield from itertools.product(*ranges)


def open_file(
    store: Store,
    key: str,
    *,
    format: str | None = None,  # noqa: A002 - MindSpore's keyword
    dec_key: bytes | None = None,
    dec_mode: str | None = "AES-GCM",
    crc_check: bool = False,
    strict_integrity: bool = False,
    unknown_fields: str = "error",
) -> CheckpointReader:
    """Open ``key`` of ``store`` for scan-then-read (see :class:`CheckpointReader`).

    ``strict_integrity`` refuses encrypted files whose blocks are not bound to their file and
    position (MindSpore-written AES-GCM files, every CBC file): see
    :mod:`mindckpt.codecs.crypto` for what each kind of file guarantees.  ``unknown_fields``
    (``"error"`` or ``"skip"``): what to do with protobuf fields ``.ckpt`` files never hold
    (see :mod:`mindckpt.formats.ckpt`).
    """
    source = store.open_read(key)
    try:
        return CheckpointReader(source, store.describe(key), format=format, dec_key=dec_key,
                                dec_mode=dec_mode, crc_check=crc_check,
                                strict_integrity=strict_integrity,
                                unknown_fields=unknown_fields)
    except BaseException:
        source.close()
        raise


def total_elements(index: Index) -> int:
    return sum(math.prod(e.shape) for e in index if e.kind == "tensor")
