"""Positional byte sources for the codecs: the protocol, adapters for files, exact reads.

The codecs read through one small protocol, the same shape as the storage layer's
``ByteSource``: an object with an integer ``size`` and ``readinto(mv, offset) -> int`` (fill
``mv`` from ``offset``; may return fewer bytes than asked; 0 only at or past the end). They
never import the storage layer; :func:`as_positional` adapts plain file objects.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class PositionalSource(Protocol):
    """Read-only bytes with a known size, read at any offset (thread-safe where possible)."""

    size: int

    def readinto(self, mv: memoryview, offset: int, /) -> int: ...


class FdSource:
    """``os.preadv`` on a file descriptor: no shared file position, safe from many threads."""

    def __init__(self, fd: int, size: int | None = None):
        self.fd = fd
        self.size = os.fstat(fd).st_size if size is None else size

    def readinto(self, mv: memoryview, offset: int) -> int:
        return os.preadv(self.fd, [mv], offset)


class FileObjectSource:
    """seek + readinto on a file object (io.BytesIO, wrappers), one call at a time."""

    def __init__(self, f: Any):
        self.f = f
        self._lock = threading.Lock()
        with self._lock:
            pos = f.tell()
            self.size = f.seek(0, os.SEEK_END)
            f.seek(pos)

    def readinto(self, mv: memoryview, offset: int) -> int:
        with self._lock:
            self.f.seek(offset)
            if hasattr(self.f, "readinto"):
                return self.f.readinto(mv) or 0
            data = self.f.read(len(mv))
            mv[: len(data)] = data
            return len(data)


def as_positional(obj: Any) -> PositionalSource:
    """``obj`` itself if it has an int ``size`` and ``readinto``; else an adapter of a file object.

    A file object with a working ``fileno()`` is read with ``os.preadv`` (its position is left
    alone); any other one (``io.BytesIO``) with ``seek`` + ``readinto`` under a lock.
    """
    size = getattr(obj, "size", None)
    if isinstance(size, int) and not isinstance(size, bool) and hasattr(obj, "readinto"):
        return obj
    if not hasattr(obj, "seek") or not (hasattr(obj, "readinto") or hasattr(obj, "read")):
        raise TypeError(
            f"expected a positional byte source (with `size` and `readinto(mv, offset)`) or a "
            f"seekable binary file object, got {type(obj).__name__}"
        )
    try:
        fd = obj.fileno()
    except (AttributeError, OSError, ValueError):
        return FileObjectSource(obj)
    return FdSource(fd)


def read_full(src: PositionalSource, mv: memoryview, offset: int) -> int:
    """Fill ``mv`` from ``offset``, looping over short reads; fewer bytes only at the end."""
    done = 0
    n = len(mv)
    while done < n:
        k = src.readinto(mv[done:], offset + done)
        if not k:
            break
        done += k
    return done


def read_at(src: PositionalSource, n: int, offset: int) -> bytes:
    """Up to ``n`` bytes from ``offset`` (fewer only at the end of the source)."""
    buf = bytearray(max(0, min(n, src.size - offset)))
    k = read_full(src, memoryview(buf), offset)
    del buf[k:]
    return bytes(buf)
