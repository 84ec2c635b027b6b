"""Whole-file transformations: :func:`convert_checkpoint` and :func:`rekey_checkpoint`.

::

    convert_checkpoint("net.ckpt", "net.safetensors")                 # .ckpt <-> safetensors
    convert_checkpoint("model.pt", "net.ckpt", enc_key=key)           # torch.save -> encrypted
    convert_checkpoint("hf_dir/", "net.safetensors", drop=["*.bias"]) # HF shards, filtered
    rekey_checkpoint("net.ckpt", enc_key=new, dec_key=old)            # change the key in place

Both write atomically (a temporary file renamed over the target; a failure leaves the target as
it was) and return the path they really wrote.  Both refuse a damaged source: a stored CRC is
checked before a conversion writes anything, and a re-keyed file is parsed while it streams
(its CRC checked, its GCM tags checked) and published only if all of it is good.

``progress(done, total)``, where given, is called with bytes as the work goes.
"""

from __future__ import annotations

import fnmatch
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import importers
from ._api import resolve
from .errors import ChecksumError, FormatError
from .formats import ckpt as _ckpt
from .formats._cursor import ByteReader
from .formats.records import Record
from .pipeline import format_from_name, open_file, write_file
from .verify import Progress, verify_checkpoint

__all__ = [
    "SOURCE_FORMATS",
    "ConvertResult",
    "RekeyResult",
    "source_format",
    "convert_checkpoint",
    "rekey_checkpoint",
]

#: What :func:`convert_checkpoint` reads: MindSpore's two formats, ``torch.save`` files and
#: Hugging Face sharded checkpoints (``model.safetensors.index.json``).
SOURCE_FORMATS = ("ckpt", "safetensors", "torch", "hf")


@dataclass
class ConvertResult:
    """What :func:`convert_checkpoint` wrote.

    Attributes:
        path: the file written (as error messages name it; a URL for remote targets).
        format: ``"ckpt"`` or ``"safetensors"``.
        source_format: one of :data:`SOURCE_FORMATS`.
        entries: entries written.
        bytes_written: bytes of the new file.
        dropped: ``(name, reason)`` for each source entry not written (``--drop`` patterns,
            ``str`` entries going to safetensors, values the target cannot hold).
        renamed: ``(old, new)`` for each renamed entry.
        source_crc: ``"ok"`` when the source had a CRC and it matched, else ``"absent"``.
    """

    path: str
    format: str
    source_format: str
    entries: int
    bytes_written: int
    dropped: list[tuple[str, str]] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    source_crc: str = "absent"


@dataclass
class RekeyResult:
    """What :func:`rekey_checkpoint` wrote: ``path``, the cipher ``before`` and ``after``
    (``None``: plain), ``bytes_written``, ``crc`` (``"ok"`` when a source CRC was checked,
    ``"added"`` when the plain output got one, else ``"absent"``)."""

    path: str
    before: str | None
    after: str | None
    bytes_written: int
    crc: str = "absent"


def source_format(path: str) -> str:
    """Which of :data:`SOURCE_FORMATS` ``path`` is (by name, then by content)."""
    if "://" not in path and importers.find_hf_index(path) is not None:
        return "hf"
    fmt = format_from_name(path)
    if fmt is not None:
        return fmt
    if "://" not in path and importers.is_torch_file(path):
        return "torch"
    return ""  # open_checkpoint sniffs the content


def _renamer(rename: Mapping[str, str] | Callable[[str], str] | None) -> Callable[[str], str]:
    if rename is None:
        return lambda n: n
    if callable(rename):
        return rename
    exact = {k: v for k, v in rename.items() if not k.endswith("*")}
    prefixes = [(k[:-1], v[:-1] if v.endswith("*") else v) for k, v in rename.items()
                if k.endswith("*")]

    def apply(name: str) -> str:
        if name in exact:
            return exact[name]
        for old, new in prefixes:
            if name.startswith(old):
                return new + name[len(old):]
        return name

    return apply


def _check_target(dst: Any, dst_format: str | None, overwrite: bool,
                  storage_options: dict[str, Any] | None) -> tuple[Any, str, str]:
    if isinstance(dst, os.PathLike):
        dst = os.fspath(dst)
    if not isinstance(dst, str) or not dst:
        raise TypeError(f"convert_checkpoint: dst must be a path or URL, got {dst!r}")
    fmt = dst_format or format_from_name(dst)
    if fmt is None:
        raise ValueError(
            f"convert_checkpoint: cannot tell the output format of '{dst}': name it .ckpt or "
            ".safetensors, or pass dst_format='ckpt' or 'safetensors'.")
    if fmt not in ("ckpt", "safetensors"):
        raise ValueError(f"convert_checkpoint: dst_format must be 'ckpt' or 'safetensors', "
                         f"got {fmt!r}")
    store, key = resolve(dst, storage_options)
    if store.isdir(key):
        raise IsADirectoryError(f"convert_checkpoint: {store.describe(key)} is a directory; "
                                "give a file name.")
    if not overwrite and store.exists(key):
        raise FileExistsError(f"convert_checkpoint: {store.describe(key)} exists; pass "
                              "overwrite=True to replace it.")
    return store, key, fmt


def _source_entries(src: str, fmt: str, dec_key: bytes | None, dec_mode: str | None,
                    storage_options: dict[str, Any] | None,
                    keep: Callable[[str], bool]) -> Iterator[tuple[str, Any, Any, str]]:
    """``(name, value or None, dtype override, note)`` in source order; ``keep(name)`` False:
    the value is not read (value None, note "dropped")."""
    if fmt == "torch":
        for e in importers.read_torch_file(src):
            yield e.name, e.value, None, e.note
        return
    if fmt == "hf":
        for e in importers.iter_hf_checkpoint(importers.read_hf_index(src)):
            yield e.name, e.value, None, e.note
        return
    from .handle import open_checkpoint

    with open_checkpoint(src, format=fmt or None, dec_key=dec_key, dec_mode=dec_mode,
                         storage_options=storage_options) as f:
        for e in f.index:
            if not keep(e.name):
                yield e.name, None, None, "dropped"
            elif e.kind == "map":
                yield e.name, None, None, "map entries cannot be written back"
            else:
                yield e.name, f.get_tensor(e.name), e.dtype, ""


def convert_checkpoint(
    src: Any,
    dst: Any,
    *,
    src_format: str | None = None,
    dst_format: str | None = None,
    dec_key: bytes | None = None,
    dec_mode: str | None = None,
    enc_key: bytes | None = None,
    enc_mode: str = "AES-GCM",
    crc_check: bool = False,
    drop: Iterable[str] = (),
    rename: Mapping[str, str] | Callable[[str], str] | None = None,
    overwrite: bool = False,
    storage_options: dict[str, Any] | None = None,
    progress: Progress = None,
) -> ConvertResult:
    """Convert one checkpoint into a ``.ckpt`` or safetensors file.

    Args:
        src: a ``.ckpt`` (plain, CRC or encrypted) or safetensors file (path or URL), a
            ``torch.save`` file (read with ``weights_only=True``), or a Hugging Face sharded
            checkpoint (its directory or its ``*.index.json``).
        dst: the file to write, exactly as given (no suffix is added).
        src_format: one of :data:`SOURCE_FORMATS`; by default from the name, then the content.
        dst_format: ``"ckpt"`` or ``"safetensors"``; by default from ``dst``'s suffix.
        dec_key, dec_mode: the source's key and mode (``dec_mode=None``: the file's own).
        enc_key, enc_mode: encrypt the ``.ckpt`` output (safetensors cannot be encrypted).
        crc_check: write a CRC (``.ckpt`` trailer or safetensors ``crc_num``).
        drop: glob patterns (``fnmatch``) of entry names to leave out.
        rename: ``{old: new}``; a key ending in ``*`` renames a prefix (``{"model.*": "*"}``),
            or a function of the name.
        overwrite: replace an existing ``dst`` (default: refuse).
        storage_options: passed to fsspec for URLs.
        progress: ``progress(done, total)`` in bytes (source verification, then the write).

    Returns:
        A :class:`ConvertResult`; ``str`` entries going to safetensors are in ``dropped``.

    Raises:
        ChecksumError: the source's CRC does not match: nothing is written.
        FormatError, DecryptionError, CheckpointNotFoundError: the source cannot be read.
        FileExistsError: ``dst`` exists and ``overwrite`` is False.
        ValueError: unknown output format, ``enc_key`` with safetensors or with ``crc_check``,
            two entries renamed to one name, nothing left to write.
    """
    if isinstance(src, os.PathLike):
        src = os.fspath(src)
    if not isinstance(src, str):
        raise TypeError(f"convert_checkpoint: src must be a path or URL, got {src!r}")
    store, key, fmt = _check_target(dst, dst_format, overwrite, storage_options)
    if enc_key is not None:
        if fmt == "safetensors":
            raise ValueError("convert_checkpoint: safetensors files cannot be encrypted (MindSpore "
                             "has no encrypted safetensors); write a .ckpt or leave out enc_key.")
        if crc_check:
            raise ValueError("convert_checkpoint: crc_check=True cannot be combined with enc_key: "
                             "MindSpore cannot load such a file (AES-GCM authenticates it).")
        from .codecs.crypto import check_cipher_args

        check_cipher_args(enc_key, enc_mode)
    sfmt = src_format if src_format is not None else source_format(src)
    if sfmt not in SOURCE_FORMATS + ("",):
        raise ValueError(f"convert_checkpoint: src_format must be one of {SOURCE_FORMATS}, got "
                         f"{sfmt!r}")
    patterns = list(drop)
    new_name = _renamer(rename)
    result_crc = "absent"
    verify_total = 0
    done = [0]

    def report(n: int, total: int) -> None:
        done[0] += n
        if progress is not None:
            progress(min(done[0], total), total)

    if sfmt in ("ckpt", "safetensors", ""):
        from .verify import describe_checkpoint

        info = describe_checkpoint(src, dec_key=dec_key, dec_mode=dec_mode,
                                   storage_options=storage_options)
        sfmt = info.format
        payload = info.total_bytes
        if info.crc is not None:
            verify_total = info.file_size
            last = [0]

            def vprog(d: int, _t: int) -> None:
                report(d - last[0], verify_total + 2 * payload)
                last[0] = d

            verify_checkpoint(src, dec_key=dec_key, dec_mode=dec_mode,
                              storage_options=storage_options, progress=vprog)
            result_crc = "ok"
    else:
        payload = 0
    records: list[Record] = []
    dropped: list[tuple[str, str]] = []
    renamed: list[tuple[str, str]] = []
    origin: dict[str, str] = {}

    def keep(name: str) -> bool:
        return not any(fnmatch.fnmatchcase(name, p) for p in patterns)

    for name, value, dtype, note in _source_entries(src, sfmt, dec_key, dec_mode,
                                                    storage_options, keep):
        if not keep(name):
            dropped.append((name, "--drop pattern"))
            continue
        if value is None:
            dropped.append((name, note))
            continue
        if isinstance(value, str) and fmt == "safetensors":
            dropped.append((name, "str entries cannot be stored in safetensors"))
            continue
        out = new_name(name)
        if not isinstance(out, str) or not out:
            raise ValueError(f"convert_checkpoint: rename gave {out!r} for '{name}'")
        if out in origin:
            raise ValueError(f"convert_checkpoint: '{origin[out]}' and '{name}' would both be "
                             f"written as '{out}'; change rename or drop one of them.")
        origin[out] = name
        if out != name:
            renamed.append((name, out))
        records.append(Record(out, value, dtype))
        if payload:
            report(value.nbytes if isinstance(value, np.ndarray) else len(value),
                   verify_total + 2 * payload)
    if not records:
        raise ValueError(f"convert_checkpoint: nothing to write from {src}: every entry was "
                         "dropped.")
    if not payload:
        payload = sum(r.value.nbytes if isinstance(r.value, np.ndarray) else len(r.value)
                      for r in records)
        done[0] = payload
    total = verify_total + 2 * payload
    wrote = write_file(store, key, records, fmt=fmt, crc_check=crc_check, enc_key=enc_key,
                       enc_mode=enc_mode, progress=lambda n: report(n, total))
    if progress is not None:
        progress(total, total)
    return ConvertResult(wrote.target, fmt, sfmt, len(records), wrote.bytes_written, dropped,
                         renamed, result_crc)


class _RangeStream:
    """Bytes ``[0, end)`` of a positional source as a stream."""

    def __init__(self, source: Any, end: int):
        self.source = source
        self.pos = 0
        self.end = end
        self.size_hint = end

    def readinto(self, b: Any) -> int:
        mv = memoryview(b).cast("B")
        n = min(len(mv), self.end - self.pos)
        if n <= 0:
            return 0
        got = int(self.source.readinto(mv[:n], self.pos))
        self.pos += got
        return got


class _Tee:
    """A stream whose bytes also go to ``sink`` (and into a running CRC) as they are read."""

    def __init__(self, stream: Any, sink: Any, report: Callable[[int], None]):
        self.stream = stream
        self.sink = sink
        self.size_hint = int(getattr(stream, "size_hint", 0))
        self.crc = 0
        self._report = report

    def readinto(self, b: Any) -> int:
        got = int(self.stream.readinto(b))
        if got:
            piece = memoryview(b).cast("B")[:got]
            self.sink.write(piece)
            self.crc = zlib.crc32(piece, self.crc)
            self._report(got)
        return got


def rekey_checkpoint(
    src: Any,
    dst: Any = None,
    *,
    dec_key: bytes | None = None,
    dec_mode: str | None = None,
    enc_key: bytes | None = None,
    enc_mode: str = "AES-GCM",
    crc_check: bool = False,
    storage_options: dict[str, Any] | None = None,
    progress: Progress = None,
) -> RekeyResult:
    """Encrypt, decrypt, or change the key or mode of a ``.ckpt``, streaming block by block.

    The plaintext flows from the source (decrypted block by block when it is encrypted) through
    the ``.ckpt`` parser, which checks every record, into the new file (encrypted block by block
    when ``enc_key`` is given).  Memory stays at a few cipher blocks whatever the file's size.

    Args:
        src: a ``.ckpt`` path or URL.
        dst: where to write; ``None`` replaces ``src`` (atomically).
        dec_key, dec_mode: the source's key and mode (``dec_mode=None``: the file's own).
        enc_key, enc_mode: the new key and mode; ``enc_key=None`` writes a plain file.
        crc_check: give the plain output a CRC trailer (not with ``enc_key``).  A plain
            source's CRC is always checked; it is dropped when the output is encrypted
            (MindSpore cannot load an encrypted file with a CRC).
        storage_options: passed to fsspec for URLs.
        progress: ``progress(done, total)`` in plaintext bytes.

    Raises:
        ValueError: nothing to do (plain to plain), ``crc_check`` with ``enc_key``, a bad key
            length or mode, a safetensors source.
        ChecksumError, FormatError, DecryptionError: the source is damaged or the key is
            wrong; the target is left as it was.
    """
    if isinstance(src, os.PathLike):
        src = os.fspath(src)
    if dst is None:
        dst = src
    elif isinstance(dst, os.PathLike):
        dst = os.fspath(dst)
    if enc_key is not None:
        if crc_check:
            raise ValueError("rekey_checkpoint: crc_check=True cannot be combined with enc_key: "
                             "MindSpore cannot load such a file (AES-GCM authenticates it).")
        from .codecs.crypto import check_cipher_args

        check_cipher_args(enc_key, enc_mode)
    sstore, skey = resolve(src, storage_options)
    dstore, dkey = resolve(dst, storage_options)
    with open_file(sstore, skey, format="ckpt", dec_key=dec_key, dec_mode=dec_mode) as r:
        if format_from_name(r.name) == "safetensors" or (
                r.cipher is None and _looks_safetensors(r)):
            raise ValueError(f"rekey_checkpoint: {r.name} is a safetensors file, which cannot be "
                             "encrypted; rekey works on .ckpt files.")
        if r.cipher is None and enc_key is None:
            raise ValueError(f"rekey_checkpoint: {r.name} is not encrypted and no enc_key was "
                             "given: there is nothing to do.")
        before = r.cipher
        stored_crc: int | None = None
        if r.cipher is None:
            index = r.index  # header scan: finds the CRC trailer
            stored_crc = index.crc
            end = index.size - (_ckpt.TRAILER_LEN if stored_crc is not None else 0)
            stream: Any = _RangeStream(r.source, end)
            closer: Any = None
        else:
            from .codecs import crypto

            stream = closer = crypto.DecryptSource(r.source, r.dec_key or b"", r.dec_mode,
                                                   path=r.name)
        total = int(stream.size_hint)
        done = [0]

        def report(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(min(done[0], total), total)

        try:
            with dstore.open_write(dkey) as w:
                if enc_key is not None:
                    from .codecs import crypto

                    sink: Any = crypto.EncryptSink(w, enc_key, enc_mode)
                else:
                    sink = w
                try:
                    tee = _Tee(stream, sink, report)
                    _ckpt.parse_ckpt(ByteReader(stream=tee), r.name, lambda _n: False)
                    while tee.readinto(bytearray(1 << 16)):  # nothing may follow the records
                        raise FormatError(f"{r.name}: bytes follow the last record; the file "
                                          "is damaged.")
                    if stored_crc is not None and tee.crc != stored_crc:
                        raise ChecksumError(
                            f"{r.name} stores crc {stored_crc} but its content has crc "
                            f"{tee.crc}: the file is damaged; restore it from a copy. Nothing "
                            "was written.")
                    if enc_key is None and crc_check:
                        sink.write(_ckpt.CRC_MAGIC + tee.crc.to_bytes(10, "big"))
                    if enc_key is not None:
                        sink.close()
                except BaseException:
                    if enc_key is not None:
                        sink.abort()
                    raise
        finally:
            if closer is not None:
                closer.close()
    crc = "ok" if stored_crc is not None else ("added" if crc_check else "absent")
    if progress is not None:
        progress(total, total)
    return RekeyResult(dstore.describe(dkey), before, enc_mode if enc_key is not None else None,
                       w.bytes_written, crc)


def _looks_safetensors(r: Any) -> bool:
    from .pipeline import sniff_format

    return sniff_format(r.source)[0] == "safetensors"
