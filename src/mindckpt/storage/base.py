"""The storage interface: where checkpoint bytes land and where they are read from.

Every backend (local files, memory, fsspec URLs) is a :class:`Store`.  A store names objects by
*keys* (a local path, or a path inside the filesystem of a URL) and offers five operations:

``open_write(key)``
    An :class:`AtomicWrite`: bytes written to it become visible under ``key`` only when the
    ``with`` block exits without an exception, all at once.  The sequence is written once, here:

    1. ``write`` the data (to a temporary object: a temp file beside the target, a multipart
       upload, a buffer);
    2. ``sync``: make the data durable (fsync), when durability is asked for;
    3. ``publish``: make it visible under the final key, atomically (rename, complete the upload);
    4. ``sync_parent``: make the publication durable (fsync the directory), when asked for.

    An exception at steps 1-3 (or in the caller's block) ``discard``-s the temporary object, and
    the object that was under ``key`` before is untouched.  An exception at step 4 means the new
    object *is* in place but not known to be durable: it is raised as :class:`DurabilityError`,
    which says exactly that.  Backends supply only the primitives (:class:`PendingWrite`).
``open_read(key)``
    A :class:`ByteSource`: positional reads (``readinto(view, offset)``) that loop over short
    reads until the view is full or the object ends.
``list(directory)``
    :class:`FileInfo` (key, size, mtime) of the objects directly under ``directory``.
``remove(key)``, ``exists(key)``.

Whether writes are made durable is an argument (``durable=``); its default is the process-wide
:func:`default_durable`, read once from ``MINDCKPT_FSYNC`` (``0`` turns fsync off, for scratch
disks and page-cache benchmarks; publication stays atomic) and settable with
:func:`set_default_durable`.

A :class:`Transaction` groups several objects of one checkpoint (the parts of a distributed save,
then an index): they are written with :class:`AtomicWrite` each, and a commit marker written
last, create-only, makes the whole set complete.  Readers treat a directory without the marker as
not a checkpoint (:func:`is_committed`).
"""

from __future__ import annotations

import builtins
import os
import posixpath
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..errors import CheckpointError, CheckpointNotFoundError, DurabilityError, StorageError

__all__ = [
    "ByteSource",
    "ByteSink",
    "FileInfo",
    "PendingWrite",
    "AtomicWrite",
    "Store",
    "Transaction",
    "DurabilityError",
    "StorageError",
    "COMMIT_MARKER",
    "INDEX_NAME",
    "default_durable",
    "set_default_durable",
    "is_committed",
    "read_exact",
]

COMMIT_MARKER = "mindckpt.commit"
INDEX_NAME = "mindckpt.index.json"

_default_durable = os.environ.get("MINDCKPT_FSYNC", "1") != "0"


def default_durable() -> bool:
    """Whether saves fsync by default (``MINDCKPT_FSYNC``, read once at import)."""
    return _default_durable


def set_default_durable(value: bool) -> None:
    """Set the process-wide default of ``durable=`` (what ``MINDCKPT_FSYNC`` set at import)."""
    global _default_durable
    _default_durable = bool(value)


@dataclass(frozen=True)
class FileInfo:
    """One object of a listing: its key, size in bytes and modification time (seconds)."""

    key: str
    size: int
    mtime: float

    @property
    def name(self) -> str:
        return posixpath.basename(self.key.replace(os.sep, "/"))


@runtime_checkable
class ByteSink(Protocol):
    """Anything whose ``write`` takes every byte it is given."""

    def write(self, data: Any) -> Any: ...


class ByteSource(ABC):
    """Positional reads of one object.  ``name`` is what error messages call it."""

    name: str
    size: int

    @abstractmethod
    def readinto_at(self, mv: memoryview, offset: int) -> int:
        """One read into ``mv`` at ``offset``; may return fewer bytes (0 at the end)."""

    def readinto(self, mv: Any, offset: int) -> int:
        """Fill ``mv`` from ``offset``; loop over short reads; fewer bytes only at the end."""
        view = memoryview(mv).cast("B")
        done = 0
        total = len(view)
        while done < total:
            got = self.readinto_at(view[done:], offset + done)
            if not got:
                break
            done += got
        return done

    def pread(self, n: int, offset: int) -> bytes:
        """Up to ``n`` bytes from ``offset`` (fewer only at the end of the object)."""
        n = max(0, min(n, self.size - offset))
        buf = bytearray(n)
        got = self.readinto(buf, offset)
        return bytes(buf[:got]) if got != n else bytes(buf)

    def mapping(self) -> memoryview | None:
        """A read-only view of the whole object when the backend can map it, else ``None``."""
        return None

    def fileno(self) -> int | None:
        """The OS file descriptor, for backends that have one (kernel read-ahead hints)."""
        return None

    def close(self) -> None:  # noqa: B027 - most sources hold nothing
        """Release what the source holds."""

    def __enter__(self) -> ByteSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_exact(source: ByteSource, n: int, offset: int) -> bytes:
    """``n`` bytes at ``offset`` or :class:`CheckpointError` naming the source."""
    data = source.pread(n, offset)
    if len(data) != n:
        from ..errors import FormatError

        raise FormatError(
            f"Failed to read {source.name}: the file ends at byte {offset + len(data)}, "
            f"{n} bytes were expected at byte {offset}. The file is truncated: restore it."
        )
    return data


class PendingWrite(ABC):
    """A backend's half-written object; :class:`AtomicWrite` calls these in its fixed order."""

    @abstractmethod
    def write(self, data: Any) -> None:
        """Append every byte of ``data``."""

    @abstractmethod
    def sync(self) -> None:
        """Make the written data durable (before it is published)."""

    @abstractmethod
    def publish(self) -> None:
        """Make the data visible under the final key, atomically."""

    @abstractmethod
    def sync_parent(self) -> None:
        """Make the publication itself durable."""

    @abstractmethod
    def discard(self) -> None:
        """Drop the unpublished data; never raises for an already-discarded write."""

    def written(self) -> int:
        return 0

    def will_sync(self, durable: bool) -> None:  # noqa: B027 - optional hook
        """Told once, before the first write, whether ``sync`` will be called (backends that
        can overlap writeback with writing start it early)."""


class AtomicWrite:
    """The shared atomic-write sequence over a :class:`PendingWrite` (see the module doc).

    Use as ``with store.open_write(key) as w: w.write(...)``.  ``bytes_written`` counts what
    went in.
    """

    def __init__(self, pending: PendingWrite, target: str, durable: bool | None = None):
        self._pending = pending
        self.target = target
        self.durable = default_durable() if durable is None else durable
        pending.will_sync(self.durable)
        self.bytes_written = 0
        self._state = "open"  # open -> published | discarded

    def write(self, data: Any) -> None:
        if self._state != "open":
            raise StorageError(f"write to {self.target} after it was {self._state}")
        self._pending.write(data)
        self.bytes_written += memoryview(data).nbytes

    def commit(self) -> None:
        """Steps 2-4; on failure at 2-3 the old object is kept, at 4 :class:`DurabilityError`."""
        if self._state != "open":
            return
        try:
            if self.durable:
                self._pending.sync()
            self._pending.publish()
        except BaseException as exc:
            self.discard()
            if isinstance(exc, OSError) and not isinstance(exc, CheckpointError):
                err = StorageError(
                    f"Failed to save {self.target}: {exc.strerror or exc}. The file was not "
                    "written; any previous file of that name is unchanged."
                )
                err.errno = exc.errno
                raise err from exc
            raise
        self._state = "published"
        if self.durable:
            try:
                self._pending.sync_parent()
            except OSError as exc:
                raise DurabilityError(
                    f"{self.target} was written and is in place, but it is not known to be "
                    f"durable: making its directory durable failed ({exc.strerror or exc}). "
                    "A crash now may lose it; check the storage, then save again."
                ) from exc

    def discard(self) -> None:
        if self._state == "open":
            self._state = "discarded"
            self._pending.discard()

    def __enter__(self) -> AtomicWrite:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.discard()
            return
        self.commit()


class Store(ABC):
    """A place for checkpoint objects (see the module doc for the contract)."""

    #: True when a published object survives a crash once ``durable`` writes return
    durable_capable: bool = True

    @abstractmethod
    def _begin(self, key: str, mode: int) -> PendingWrite:
        """Start a pending write of ``key`` (backend primitive)."""

    def open_write(self, key: str, *, durable: bool | None = None, mode: int = 0o400) -> AtomicWrite:
        """An atomic write of ``key`` (``mode``: permissions where the backend has them)."""
        return AtomicWrite(self._begin(key, mode), self.describe(key), durable)

    @abstractmethod
    def open_read(self, key: str) -> ByteSource:
        """A positional source over ``key``; :class:`CheckpointNotFoundError` if missing."""

    @abstractmethod
    def list(self, directory: str) -> list[FileInfo]:
        """The objects directly under ``directory`` (empty when it does not exist)."""

    @abstractmethod
    def remove(self, key: str) -> None:
        """Delete ``key``; :class:`CheckpointNotFoundError` if it does not exist."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    def list_dirs(self, directory: str) -> builtins.list[str]:
        """The keys of the directories (object stores: common prefixes) directly under
        ``directory``, sorted (empty when it does not exist); sliced checkpoints are such
        directories."""
        raise NotImplementedError(f"{type(self).__name__} cannot list directories; sliced "
                                  "checkpoints cannot be managed on it")

    def remove_tree(self, directory: str) -> None:
        """Delete ``directory`` and everything under it (nothing if it does not exist)."""
        raise NotImplementedError(f"{type(self).__name__} cannot remove directories; sliced "
                                  "checkpoints cannot be retired on it")

    def isdir(self, key: str) -> bool:
        return False

    def makedirs(self, directory: str) -> None:  # noqa: B027 - flat namespaces need nothing
        """Create ``directory`` (and parents) where the backend has directories."""

    def join(self, *parts: str) -> str:
        return posixpath.join(*parts)

    def parent(self, key: str) -> str:
        return posixpath.dirname(key)

    def describe(self, key: str) -> str:
        """How messages name ``key`` (a path, or a URL)."""
        return key

    def write_bytes(self, key: str, data: bytes, *, durable: bool | None = None) -> None:
        with self.open_write(key, durable=durable) as w:
            w.write(data)

    def create_only(self, key: str, data: bytes, *, durable: bool | None = None) -> None:
        """Write ``key`` only if it does not exist yet (commit markers).

        Backends with conditional writes make this race-free; the default checks first.
        """
        if self.exists(key):
            raise StorageError(f"{self.describe(key)} already exists; refusing to overwrite it.")
        self.write_bytes(key, data, durable=durable)

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as src:
            return read_exact(src, src.size, 0)

    def missing(self, key: str, what: str = "checkpoint file") -> CheckpointNotFoundError:
        return CheckpointNotFoundError(
            f"The {what} {self.describe(key)} does not exist; check the path."
        )


class Transaction:
    """Several objects of one checkpoint under ``directory``, complete only once committed.

    ``with txn.part(name) as w: ...`` writes each object atomically; :meth:`commit` writes the
    index (when given) and then the commit marker, create-only, last.  Until the marker exists
    :func:`is_committed` is false and loaders refuse the directory.  A failed transaction leaves
    no marker, so a previous committed checkpoint elsewhere is never affected.
    """

    def __init__(self, store: Store, directory: str, *, durable: bool | None = None):
        self.store = store
        self.directory = directory
        self.durable = durable
        self.parts: list[str] = []

    def part(self, name: str) -> AtomicWrite:
        key = self.store.join(self.directory, name)
        self.parts.append(key)
        return self.store.open_write(key, durable=self.durable)

    def commit(self, index: bytes | None = None, marker: bytes = b"") -> None:
        self.store.makedirs(self.directory)
        if index is not None:
            self.store.write_bytes(self.store.join(self.directory, INDEX_NAME), index,
                                   durable=self.durable)
        self.store.create_only(self.store.join(self.directory, COMMIT_MARKER), marker,
                               durable=self.durable)


def is_committed(store: Store, directory: str) -> bool:
    """Whether ``directory`` holds a committed :class:`Transaction`."""
    return store.exists(store.join(directory, COMMIT_MARKER))
