"""Look at a checkpoint without loading it: :func:`describe_checkpoint` and :func:`verify_checkpoint`.

::

    info = describe_checkpoint("net.ckpt")        # headers only: format, CRC, cipher, entries
    info.total_elements, info.bytes_by_dtype
    result = verify_checkpoint("net.ckpt", progress=lambda done, total: ...)

``describe_checkpoint`` reads what the format lets it read without payloads: the record headers of
a plain ``.ckpt``, the JSON header of a safetensors file.  An encrypted ``.ckpt`` has its records
inside the ciphertext, so describing one decrypts the blocks that hold record headers.

``verify_checkpoint`` checks everything that can be checked, in one streamed pass that keeps no
tensor in memory: the structure and every length against its shape, the CRC trailer (``.ckpt``)
or ``crc_num`` (safetensors) when the file has one, every GCM tag and the block order (or the
CBC padding), and the safetensors offsets.  It raises the documented error of the first problem
(:class:`~mindckpt.ChecksumError`, :class:`~mindckpt.FormatError`,
:class:`~mindckpt.DecryptionError`, :class:`~mindckpt.CheckpointNotFoundError`) and returns a
:class:`VerifyResult` when the file is good.

``progress``, where a function takes it, is called as ``progress(done, total)`` with bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._api import resolve
from .formats import ckpt as _ckpt
from .formats._cursor import ByteReader
from .formats.records import Index, IndexEntry
from .pipeline import open_file

__all__ = [
    "CheckpointInfo",
    "VerifyResult",
    "Progress",
    "sniff_checkpoint",
    "describe_checkpoint",
    "verify_checkpoint",
]

#: ``progress(done, total)``: bytes processed so far and the bytes the whole job will process.
Progress = Callable[[int, int], Any] | None

_PIECE = 8 << 20


@dataclass
class CheckpointInfo:
    """What :func:`describe_checkpoint` found: the file and its entries (no payload read).

    Attributes:
        path: the file as error messages name it (a local path or a URL).
        format: ``"ckpt"`` or ``"safetensors"``.
        file_size: bytes of the file.
        plain_size: bytes of the checkpoint body (the plaintext of an encrypted file).
        cipher: ``"AES-GCM"``, ``"AES-CBC"``, ``"SM4-CBC"`` or ``None`` (not encrypted).
        crc: the stored CRC-32 (``.ckpt`` trailer or safetensors ``crc_num``), ``None`` if the
            file has none.  Not checked here: see :func:`verify_checkpoint`.
        metadata: safetensors ``__metadata__`` (empty for ``.ckpt``).
        entries: the entries in file order.
    """

    path: str
    format: str
    file_size: int
    plain_size: int
    cipher: str | None
    crc: int | None
    metadata: dict[str, str]
    entries: list[IndexEntry] = field(default_factory=list)

    @property
    def total_elements(self) -> int:
        """Elements of all tensor entries."""
        return sum(math.prod(e.shape) for e in self.entries if e.kind == "tensor")

    @property
    def total_bytes(self) -> int:
        """Payload bytes of all entries."""
        return sum(e.nbytes for e in self.entries)

    @property
    def bytes_by_dtype(self) -> dict[str, int]:
        """Payload bytes per stored type (``"Float32"``, ``"str"`` ...), largest first."""
        out: dict[str, int] = {}
        for e in self.entries:
            t = entry_type(e)
            out[t] = out.get(t, 0) + e.nbytes
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass
class VerifyResult:
    """A good file, as :func:`verify_checkpoint` found it.

    Attributes:
        path, format, cipher, file_size: as in :class:`CheckpointInfo`.
        entries: the number of entries.
        crc: ``"ok"`` (a stored CRC matched) or ``"absent"`` (the file has none: payload bytes of
            a plain file without CRC cannot be checked, only their lengths).
        authenticated: every block's GCM tag checked (AES-GCM files).
        checks: what was checked, in words.
    """

    path: str
    format: str
    cipher: str | None
    file_size: int
    entries: int
    crc: str
    authenticated: bool
    checks: list[str]


def entry_type(e: IndexEntry) -> str:
    """The stored type of an entry as a name: ``Float32``, ``str``, ``map`` ..."""
    if e.dtype is not None:
        return e.dtype.name
    return e.type_name or e.kind


def _stored_crc(index: Index) -> int | None:
    if index.format == "safetensors":
        raw = index.metadata.get("crc_num")
        return int(raw) if raw is not None and raw.isdigit() else None
    return index.crc


def sniff_checkpoint(path: Any, *, storage_options: dict[str, Any] | None = None
                     ) -> tuple[str, str | None]:
    """``(format, cipher)`` of a file from its first bytes (nine of them are read): whether it
    is encrypted, and with which mode, before any key is needed.

    Raises:
        CheckpointNotFoundError: no such file.
    """
    from .pipeline import format_from_name, sniff_format

    store, key = resolve(path, storage_options)
    with store.open_read(key) as source:
        fmt, cipher = sniff_format(source)
    return (format_from_name(key) or fmt) if cipher is None else "ckpt", cipher


def describe_checkpoint(
    path: Any,
    *,
    dec_key: bytes | None = None,
    dec_mode: str | None = None,
    crc_check: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> CheckpointInfo:
    """Describe a checkpoint from its headers (see the module doc for what is read).

    Args:
        path: a local path or an fsspec URL.
        dec_key: the key of an encrypted ``.ckpt``.
        dec_mode: its mode; ``None`` takes the mode the file names.
        crc_check: also check the stored CRC (reads every byte once).
        storage_options: passed to fsspec for URLs.

    Raises:
        CheckpointNotFoundError: no such file.
        FormatError: the headers are damaged.
        ChecksumError: ``crc_check`` and the CRC is missing or wrong.
        DecryptionError: an encrypted file without ``dec_key``, a key for a plain file, or a
            wrong key or mode.
    """
    store, key = resolve(path, storage_options)
    with open_file(store, key, dec_key=dec_key, dec_mode=dec_mode, crc_check=crc_check) as r:
        index = r.index
        return CheckpointInfo(
            path=r.name,
            format=r.format,
            file_size=r.source.size,
            plain_size=index.size,
            cipher=r.cipher,
            crc=_stored_crc(index),
            metadata=dict(index.metadata),
            entries=list(index),
        )


class _Counted:
    """A positional source (``size``, ``pread``, ``readinto``) that reports bytes read."""

    def __init__(self, source: Any, report: Callable[[int], None]):
        self.source = source
        self.size = source.size
        self._report = report

    def pread(self, n: int, offset: int) -> bytes:
        data = bytes(self.source.pread(n, offset))
        self._report(len(data))
        return data

    def readinto(self, mv: Any, offset: int) -> int:
        got = int(self.source.readinto(mv, offset))
        self._report(got)
        return got


class _CountedStream:
    """A sequential stream (``readinto``, ``size_hint``) that reports bytes read."""

    def __init__(self, stream: Any, report: Callable[[int], None]):
        self.stream = stream
        self.size_hint = int(getattr(stream, "size_hint", 0))
        self._report = report

    def readinto(self, b: Any) -> int:
        got = int(self.stream.readinto(b))
        self._report(got)
        return got


class _Meter:
    def __init__(self, total: int, progress: Progress):
        self.done = 0
        self.total = total
        self.progress = progress

    def __call__(self, n: int) -> None:
        if n and self.progress is not None:
            self.done += n
            self.progress(min(self.done, self.total), self.total)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress(self.total, self.total)


def verify_checkpoint(
    path: Any,
    *,
    dec_key: bytes | None = None,
    dec_mode: str | None = None,
    storage_options: dict[str, Any] | None = None,
    progress: Progress = None,
) -> VerifyResult:
    """Check a checkpoint completely without loading it (see the module doc).

    Args:
        path: a local path or an fsspec URL.
        dec_key: the key of an encrypted ``.ckpt`` (required for those).
        dec_mode: its mode; ``None`` takes the mode the file names.
        storage_options: passed to fsspec for URLs.
        progress: ``progress(done, total)``, called as bytes are checked.

    Returns:
        A :class:`VerifyResult`.  A file that is not good raises instead.

    Raises:
        CheckpointNotFoundError: no such file.
        FormatError: damaged structure, a length that does not match a shape, bad offsets.
        ChecksumError: the stored CRC does not match the content.
        DecryptionError: no key for an encrypted file, wrong key or mode, a failed GCM tag,
            reordered, dropped or truncated blocks, bad CBC padding.
    """
    store, key = resolve(path, storage_options)
    checks: list[str] = []
    with open_file(store, key, dec_key=dec_key, dec_mode=dec_mode) as r:
        size = r.source.size
        meter = _Meter(size, progress)
        if r.format == "safetensors":
            index = r.index
            checks.append("header, dtypes, shapes and offsets")
            crc = "absent"
            if "crc_num" in index.metadata:
                with open_file(store, key, format="safetensors", crc_check=True) as checked:
                    _ = checked.index  # MindSpore's crc_num over every tensor
                crc = "ok"
                checks.append("crc_num over every tensor")
            meter.finish()
            return VerifyResult(r.name, "safetensors", None, size, len(index), crc, False, checks)
        if r.cipher is not None:
            from .codecs import crypto

            stream = crypto.DecryptSource(r.source, r.dec_key or b"", r.dec_mode, path=r.name)
            try:
                reader = ByteReader(stream=_CountedStream(stream, meter), track_crc=False)
                _out, index = _ckpt.parse_ckpt(reader, r.name, lambda _n: False)
            finally:
                stream.close()
            gcm = r.dec_mode == "AES-GCM"
            checks.append(f"every {r.dec_mode} block decrypted"
                          + (" and its tag checked" if gcm else " and its padding checked"))
            if gcm and getattr(stream, "bound", False):
                checks.append("block order, count and file binding")
            checks.append("record structure and every length against its shape")
            meter.finish()
            return VerifyResult(r.name, "ckpt", r.cipher, size, len(index), "absent", gcm, checks)
        index = r.index  # header-only scan: structure and lengths
        checks.append("record structure and every length against its shape")
        crc = "absent"
        if index.crc is not None:
            reader = ByteReader(source=_Counted(r.source, meter), track_crc=True)
            _ckpt.parse_ckpt(reader, r.name, lambda _n: False, crc_check=True)
            crc = "ok"
            checks.append("CRC-32 trailer over every byte")
        meter.finish()
        return VerifyResult(r.name, "ckpt", None, size, len(index), crc, False, checks)
