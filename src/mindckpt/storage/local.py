"""Local files: durable atomic replacement on write, bounded positional reads on load.

Writing (:class:`AtomicFile`): the data goes to a uniquely named temporary file in the target's
directory; on success it is flushed, ``fsync``-ed, made read-only (0400, as MindSpore leaves its
checkpoints), renamed over the target with ``os.replace`` and the directory is ``fsync``-ed.  On
any failure the temporary file is removed and the previous checkpoint is untouched.  Unlike
MindSpore, nothing is deleted before the new file is complete.

Reading (:class:`ByteReader`): a forward-only cursor over a plain file or a decrypted stream.
Small header reads come from a little read-ahead buffer; tensor payloads go straight from the
file (``preadv``) or the stream into the caller's array, so each payload byte is copied once.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from typing import Any, BinaryIO, cast

__all__ = ["AtomicFile", "ByteReader", "FileSink", "write_all", "fsync_dir"]

READ_ONLY = 0o400


def write_all(f: Any, data: Any) -> None:
    """Write every byte of ``data`` to a raw (unbuffered) file, looping over short writes."""
    mv = memoryview(data).cast("B")
    while mv:
        n = f.write(mv)
        if n is None:  # non-blocking raw file with nothing written; not expected for files
            continue
        mv = mv[n:]


class FileSink:
    """A sink whose ``write`` takes every byte (loops over a raw file's short writes)."""

    def __init__(self, f: Any):
        self.f = f

    def write(self, data: Any) -> None:
        write_all(self.f, data)


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # platforms where directories cannot be opened
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicFile:
    """``with AtomicFile(path) as f: f.write(...)`` replaces ``path`` only when all went well.

    ``f`` is a raw, unbuffered binary file: use :func:`write_all`.  ``mode`` is the permission of
    the final file (0400 by default).
    """

    def __init__(self, path: str, mode: int = READ_ONLY, durable: bool | None = None):
        self.path = path
        self.mode = mode
        # MINDCKPT_FSYNC=0 skips fsync (scratch disks, benchmarks); the rename stays atomic
        self.durable = os.environ.get("MINDCKPT_FSYNC", "1") != "0" if durable is None else durable
        self.tmp_path: str | None = None
        self.file: BinaryIO | None = None

    def __enter__(self) -> Any:
        directory, base = os.path.split(self.path)
        fd, self.tmp_path = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory or ".")
        self.file = open(fd, "wb", buffering=0)  # noqa: SIM115 - closed in __exit__
        return self.file

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        f, tmp = cast(BinaryIO, self.file), cast(str, self.tmp_path)  # set by __enter__
        if exc_type is not None:
            self._discard(f, tmp)
            return
        try:
            if self.durable:
                os.fsync(f.fileno())
            f.close()
            os.chmod(tmp, self.mode)
            os.replace(tmp, self.path)
        except BaseException:
            self._discard(f, tmp)
            raise
        if self.durable:
            fsync_dir(os.path.dirname(self.path) or ".")

    @staticmethod
    def _discard(f: Any, tmp: str) -> None:
        try:
            f.close()
        except OSError:
            pass
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


class ByteReader:
    """A forward-only reader with an optional running CRC-32 of everything consumed.

    Backends: a plain file descriptor (``fd`` and ``size``: positional reads, nothing is read
    for skipped payloads unless the CRC is tracked) or a stream with ``readinto`` and
    ``size_hint`` (a decrypting source).
    """

    HEADER_READAHEAD = 4096

    def __init__(self, *, fd: int | None = None, size: int = 0, stream: Any = None,
                 track_crc: bool = False):
        self.fd = fd
        self.stream = stream
        self.size = size if fd is not None else int(getattr(stream, "size_hint", 0))
        self.exact_size = fd is not None
        self.pos = 0
        self.track_crc = track_crc
        self.crc = 0
        self._buf: bytes | bytearray = b""
        self._buf_start = 0  # file offset of _buf[0]
        self._eof = False  # stream backend: no more bytes

    # -- internals
    def _buffered(self) -> int:
        return self._buf_start + len(self._buf) - self.pos

    def _fill(self, n: int) -> None:
        """Make at least ``n`` bytes from ``pos`` available in the buffer, if the input has them."""
        if self._buffered() >= n:
            return
        if self.fd is not None:
            want = max(n, self.HEADER_READAHEAD)
            self._buf = os.pread(self.fd, want, self.pos)
            self._buf_start = self.pos
            return
        keep = self._buf[self.pos - self._buf_start:] if self._buffered() > 0 else b""
        buf = bytearray(max(n, 1 << 16))
        buf[:len(keep)] = keep
        have = len(keep)
        while have < len(buf) and not self._eof:
            got = self.stream.readinto(memoryview(buf)[have:])
            if not got:
                self._eof = True
                break
            have += got
        del buf[have:]
        self._buf = buf
        self._buf_start = self.pos

    # -- public API
    def remaining_bound(self) -> int:
        """An upper bound of the bytes left (exact for plain files)."""
        return max(self.size - self.pos, self._buffered())

    def at_eof(self) -> bool:
        if self.fd is not None:
            return self.pos >= self.size
        self._fill(1)
        return self._buffered() <= 0

    def peek(self, n: int) -> bytes:
        """Up to ``n`` bytes from the current position, without consuming them."""
        self._fill(n)
        off = self.pos - self._buf_start
        return bytes(self._buf[off:off + n])

    def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or fewer at the end of the input (the caller checks)."""
        data = self.peek(n)
        self.pos += len(data)
        if self.track_crc:
            self.crc = zlib.crc32(data, self.crc)
        return data

    def readinto(self, mv: memoryview) -> int:
        """Fill ``mv`` (a byte view) from the current position; return the bytes filled."""
        total = len(mv)
        done = 0
        # bytes already in the buffer (stream backend, or a tiny payload after a header)
        avail = min(self._buffered(), total)
        if avail > 0 and (self.fd is None or total <= self.HEADER_READAHEAD):
            off = self.pos - self._buf_start
            mv[:avail] = self._buf[off:off + avail]
            done = avail
        while done < total:
            if self.fd is not None:
                got = os.preadv(self.fd, [mv[done:]], self.pos + done)
            else:
                got = self.stream.readinto(mv[done:])
            if not got:
                break
            done += got
        if self.track_crc:
            self.crc = zlib.crc32(mv[:done], self.crc)
        self.pos += done
        return done

    def skip(self, n: int) -> int:
        """Consume ``n`` bytes without keeping them; return how many there were."""
        if self.fd is not None and not self.track_crc:
            n = min(n, self.size - self.pos)
            self.pos += n
            return n
        done = 0
        scratch = bytearray(min(n, 1 << 20))
        while done < n:
            step = min(n - done, len(scratch))
            got = self.readinto(memoryview(scratch)[:step])
            if not got:
                break
            done += got
        return done
