"""An in-memory :class:`~mindckpt.storage.base.Store`: for tests, and for callers that want
checkpoint bytes without a filesystem.

Keys are ``/``-separated paths; "directories" exist implicitly.  Published objects are
immutable ``bytes``; a pending write becomes visible only when it is published.
"""

from __future__ import annotations

import builtins
import posixpath
import threading
import time
from typing import Any

from .base import ByteSource, FileInfo, PendingWrite, Store

__all__ = ["MemoryStore", "BytesSource"]


class BytesSource(ByteSource):
    """Positional reads of an in-memory buffer (zero-copy :meth:`mapping`)."""

    def __init__(self, data: Any, name: str = "<bytes>"):
        self._mv = memoryview(data).cast("B")
        self.size = len(self._mv)
        self.name = name

    def readinto_at(self, mv: memoryview, offset: int) -> int:
        part = self._mv[offset:offset + len(mv)]
        mv[:len(part)] = part
        return len(part)

    def mapping(self) -> memoryview | None:
        return self._mv.toreadonly()


class _MemoryPending(PendingWrite):
    def __init__(self, store: MemoryStore, key: str):
        self.store = store
        self.key = key
        self.buf: bytearray | None = bytearray()

    def write(self, data: Any) -> None:
        if self.buf is None:
            raise ValueError(f"write to {self.key} after it was closed")
        self.buf += memoryview(data).cast("B")

    def sync(self) -> None:
        pass

    def publish(self) -> None:
        if self.buf is None:
            raise ValueError(f"{self.key} was discarded")
        self.store._put(self.key, bytes(self.buf))
        self.buf = None

    def sync_parent(self) -> None:
        pass

    def discard(self) -> None:
        self.buf = None

    def written(self) -> int:
        return len(self.buf or b"")


class MemoryStore(Store):
    """A dict of ``key -> bytes`` behind the Store contract (thread-safe)."""

    def __init__(self) -> None:
        self._objects: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _norm(key: str) -> str:
        return posixpath.normpath("/" + key.replace("\\", "/"))

    def _put(self, key: str, data: bytes) -> None:
        with self._lock:
            self._objects[self._norm(key)] = (data, time.time())

    def _begin(self, key: str, mode: int) -> PendingWrite:
        return _MemoryPending(self, key)

    def open_read(self, key: str) -> BytesSource:
        with self._lock:
            item = self._objects.get(self._norm(key))
        if item is None:
            raise self.missing(key)
        return BytesSource(item[0], self.describe(key))

    def list(self, directory: str) -> list[FileInfo]:
        d = self._norm(directory)
        with self._lock:
            items = list(self._objects.items())
        return [FileInfo(k, len(v), t) for k, (v, t) in items if posixpath.dirname(k) == d]

    def remove(self, key: str) -> None:
        with self._lock:
            if self._objects.pop(self._norm(key), None) is None:
                raise self.missing(key)

    def exists(self, key: str) -> bool:
        with self._lock:
            return self._norm(key) in self._objects

    def isdir(self, key: str) -> bool:
        d = self._norm(key).rstrip("/") + "/"
        with self._lock:
            return any(k.startswith(d) for k in self._objects)

    def list_dirs(self, directory: str) -> builtins.list[str]:
        d = self._norm(directory).rstrip("/") + "/"
        with self._lock:
            keys = list(self._objects)
        names = {k[len(d):].split("/", 1)[0] for k in keys
                 if k.startswith(d) and "/" in k[len(d):]}
        return sorted(posixpath.join(directory, n) for n in names)

    def remove_tree(self, directory: str) -> None:
        d = self._norm(directory).rstrip("/") + "/"
        with self._lock:
            for k in [k for k in self._objects if k.startswith(d)]:
                del self._objects[k]

    def create_only(self, key: str, data: bytes, *, durable: bool | None = None) -> None:
        from ..errors import StorageError

        k = self._norm(key)
        with self._lock:
            if k in self._objects:
                raise StorageError(f"{key} already exists; refusing to overwrite it.")
            self._objects[k] = (bytes(data), time.time())

    def describe(self, key: str) -> str:
        return f"memory:{self._norm(key)}"
