"""A forward-only cursor over a byte source or a stream, with an optional running CRC-32.

The ``.ckpt`` parser reads through it: small header reads come from a little read-ahead buffer;
tensor payloads go straight from the source into the caller's array (one copy per byte).
"""

from __future__ import annotations

from typing import Any

from ..codecs.crc import crc32

__all__ = ["ByteReader"]


class ByteReader:
    """A forward-only reader with an optional running CRC-32 of everything consumed.

    Backends: a positional ``source`` (a :class:`~mindckpt.storage.base.ByteSource`: its
    ``readinto(view, offset)`` fills the view unless the source ends; nothing is read for skipped
    payloads unless the CRC is tracked) or a ``stream`` with ``readinto(view)`` and
    ``size_hint`` (a decrypting source).
    """

    HEADER_READAHEAD = 4096

    def __init__(self, *, source: Any = None, stream: Any = None, track_crc: bool = False,
                 start: int = 0, readahead: int | None = None):
        self.fd = source  # positional backend (named fd for brevity: "has offsets")
        self.stream = stream
        self.size = source.size if source is not None else int(getattr(stream, "size_hint", 0))
        if readahead is not None:
            self.HEADER_READAHEAD = readahead  # scans read little ahead: headers only
        self.pos = start
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
            self._buf = self.fd.pread(want, self.pos)
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
            self.crc = crc32(data, self.crc)
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
                got = self.fd.readinto(mv[done:], self.pos + done)
            else:
                got = self.stream.readinto(mv[done:])
            if not got:
                break
            done += got
        if self.track_crc:
            self.crc = crc32(mv[:done], self.crc)
        self.pos += done
        return done

    def window(self, n: int = 0) -> tuple[bytes | bytearray, int]:
        """The read-ahead buffer (refilled to at least ``n`` or the read-ahead size, if the
        input has it) and the index of the cursor in it; see :meth:`consume_to`."""
        self._fill(max(n, self.HEADER_READAHEAD))
        return self._buf, self.pos - self._buf_start

    def window_start(self) -> int:
        """The file offset of ``window()[0][0]``."""
        return self._buf_start

    def consume_to(self, k: int) -> None:
        """Move the cursor to index ``k`` of the current window (the CRC takes the bytes)."""
        off = self.pos - self._buf_start
        if self.track_crc and k > off:
            self.crc = crc32(memoryview(self._buf)[off:k], self.crc)
        self.pos = self._buf_start + k

    def seek(self, pos: int) -> None:
        """Move a positional cursor to ``pos`` (no CRC is tracked across a seek)."""
        self.pos = pos

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
