"""Checkpoints on any fsspec filesystem: :class:`FsspecStore`.

How a write is made atomic depends on the filesystem (``write_strategy``, chosen from the
filesystem's protocol unless given); docs/remote.md states what each one guarantees.

``"multipart"`` (S3 and S3-compatible, through s3fs)
    The object is streamed out as an S3 multipart upload while the checkpoint is produced: the
    bytes are cut into parts of ``part_size`` (>= 5 MiB, 16 MiB by default), at most
    ``max_concurrency`` parts in flight (4), so a save holds at most
    ``(max_concurrency + 2) * part_size`` bytes (96 MiB: the parts in flight, the one being
    filled, the one being handed over) whatever the checkpoint's size.
    ``publish`` completes the upload, the moment S3 makes the whole object visible; ``discard``
    aborts it.  An object smaller than one part is sent as a single PUT at ``publish``.
    ``create_only`` sends ``If-None-Match: *`` (on the PUT, or on the completion, aborting the
    upload when the server refuses it).  Nothing is ever written in place or renamed by copy.
    The S3 calls go straight to s3fs's aiobotocore client (its session, credentials, endpoint
    and ``s3_additional_kwargs``), with botocore's retries only (no s3fs retry loop around
    them) and no listing cache: :mod:`mindckpt.storage.s3`.
``"rename"`` (local and other filesystems with a real rename)
    A temporary ``.{name}.XXXXXXXX.tmp`` beside the target, then ``mv`` over it.  Atomic where
    the filesystem's ``mv`` is a rename (the local filesystem).  On other protocols this is
    used with a warning, because their ``mv`` may be a copy.
``"buffer"`` (``memory://``)
    The bytes are gathered, then put under the key in one assignment (fsspec's memory
    filesystem swaps a whole file object).
``"upload"`` (``gs://``/``gcs://``)
    The filesystem's own resumable upload straight to the key: the object appears when the
    upload is finalized at ``publish``; ``discard`` cancels it (``discard()``) and the file is
    marked closed so that it never finalizes partial data on garbage collection.

Reads (:meth:`FsspecStore.open_read`) are ranged: nothing is downloaded but the spans asked
for.  On S3 the first ``head_bytes`` (1 MiB) come with the request that learns the object's size
and ETag; every later range is asked ``If-Match`` that ETag, so a reader never mixes two
versions of an object (a replaced object raises :class:`StorageError`: open it again).  Large
reads are split into ``read_chunk`` ranges (64 MiB) fetched ``max_concurrency`` at a time, each
streamed straight into the caller's buffer (no copy held); reads that follow each other (a full
load) switch on a read-ahead of at most ``readahead`` bytes (64 MiB) in ranges that start at
1 MiB and double up to half of that.
"""

from __future__ import annotations

import builtins
import contextlib
import posixpath
import secrets
import threading
import warnings
from collections.abc import Callable
from typing import Any

from ..errors import CheckpointError, CheckpointNotFoundError, MissingDirectoryError, StorageError
from ._remote import as_epoch, cause, wrap
from .base import ByteSource, FileInfo, PendingWrite, Store
from .local import TEMP_PATTERN
from .s3 import MIN_PART_SIZE, S3_CONFIG_DEFAULTS, S3Client, S3Objects, UploadInfo

__all__ = [
    "FsspecStore",
    "UploadInfo",
    "DEFAULT_PART_SIZE",
    "DEFAULT_CONCURRENCY",
    "MIN_PART_SIZE",
    "S3_CONFIG_DEFAULTS",
]

DEFAULT_PART_SIZE = 16 << 20
DEFAULT_CONCURRENCY = 4
DEFAULT_READ_CHUNK = 64 << 20
DEFAULT_READAHEAD = 64 << 20
DEFAULT_HEAD_BYTES = 1 << 20

_S3_PROTOCOLS = {"s3", "s3a"}
_RENAME_PROTOCOLS = {"file", "local"}
_UPLOAD_PROTOCOLS = {"gs", "gcs"}
STRATEGIES = ("multipart", "rename", "buffer", "upload")
_warned: set[str] = set()


def _protocol(fs: Any) -> str:
    proto = fs.protocol
    return str(proto[0] if isinstance(proto, (tuple, list)) else proto)


# ---------------------------------------------------------------------------------------------
# pending writes

class _RenamePending(PendingWrite):
    def __init__(self, store: FsspecStore, key: str):
        self.store = store
        self.fs = store.fs
        self.key = key
        parent, base = posixpath.split(key)
        self.parent = parent
        self.tmp = posixpath.join(parent, f".{base}.{secrets.token_hex(4)}.tmp")
        try:
            if parent and not self.fs.isdir(parent):
                raise MissingDirectoryError(
                    f"Cannot save {store.describe(key)}: its directory "
                    f"{store.describe(parent)} does not exist; create it first.")
            self.f: Any = self.fs.open(self.tmp, "wb")
        except CheckpointError:
            raise
        except Exception as exc:
            raise wrap(exc, "save", store.describe(key)) from exc
        self.size = 0

    def write(self, data: Any) -> None:
        try:
            self.f.write(data)
        except Exception as exc:
            raise wrap(exc, "save", self.store.describe(self.key)) from exc
        self.size += memoryview(data).nbytes

    def sync(self) -> None:
        self.f.flush()
        fileno = getattr(self.f, "fileno", None)
        if fileno is not None:
            import os
            with contextlib.suppress(OSError, ValueError, AttributeError,
                                     NotImplementedError, TypeError):
                fd = fileno()
                os.fsync(fd)

    def publish(self) -> None:
        self.f.close()
        self.fs.mv(self.tmp, self.key)

    def sync_parent(self) -> None:
        if self.store.write_strategy == "rename" and _protocol(self.fs) in _RENAME_PROTOCOLS:
            from .local import fsync_dir

            fsync_dir(self.fs._strip_protocol(self.parent) or "/")

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.f.close()
        with contextlib.suppress(Exception):
            self.fs.rm_file(self.tmp)

    def written(self) -> int:
        return self.size


class _BufferPending(PendingWrite):
    def __init__(self, store: FsspecStore, key: str):
        self.store = store
        self.key = key
        self.buf: bytearray | None = bytearray()

    def write(self, data: Any) -> None:
        if self.buf is None:
            raise StorageError(f"write to {self.store.describe(self.key)} after it was closed")
        self.buf += memoryview(data).cast("B")

    def sync(self) -> None:
        pass

    def publish(self) -> None:
        if self.buf is None:
            raise StorageError(f"{self.store.describe(self.key)} was discarded")
        data, self.buf = bytes(self.buf), None
        with self.store._lock:
            self.store.fs.pipe_file(self.key, data)

    def sync_parent(self) -> None:
        pass

    def discard(self) -> None:
        self.buf = None

    def written(self) -> int:
        return len(self.buf or b"")


class _UploadPending(PendingWrite):
    def __init__(self, store: FsspecStore, key: str, create_only: bool = False):
        self.store = store
        self.key = key
        self.create_only = create_only
        try:  # "xb": gcsfs uploads with ifGenerationMatch=0, a server-side create-only
            self.f: Any = store.fs.open(key, "xb" if create_only else "wb",
                                        block_size=store.part_size)
        except Exception as exc:
            raise wrap(exc, "save", store.describe(key)) from exc
        self.size = 0

    def write(self, data: Any) -> None:
        try:
            self.f.write(data)
        except Exception as exc:
            raise wrap(exc, "save", self.store.describe(self.key)) from exc
        self.size += memoryview(data).nbytes

    def sync(self) -> None:
        pass

    def publish(self) -> None:
        try:
            self.f.close()
        except Exception as exc:
            if self.create_only and cause(exc)[0] in ("precondition", "exists"):
                raise StorageError(f"{self.store.describe(self.key)} already exists; refusing "
                                   "to overwrite it.") from exc
            raise wrap(exc, "save", self.store.describe(self.key)) from exc

    def sync_parent(self) -> None:
        pass

    def discard(self) -> None:
        # never close(): fsspec's buffered files finalize (publish) whatever was written
        with contextlib.suppress(Exception):
            self.f.discard()
        self.f.closed = True
        self.f.buffer = None

    def written(self) -> int:
        return self.size


# ---------------------------------------------------------------------------------------------
# reads

class _FileSource(ByteSource):
    """Positional reads through one open fsspec file (local: the same inode throughout)."""

    def __init__(self, store: FsspecStore, key: str):
        self.name = store.describe(key)
        try:
            self.f: Any = store.fs.open(key, "rb")
            self.size = self._size_of_open_file(store, key)
        except Exception as exc:
            raise wrap(exc, "read", self.name, reading=True) from exc
        self._lock = threading.Lock()

    def _size_of_open_file(self, store: FsspecStore, key: str) -> int:
        size = getattr(self.f, "size", None)  # fsspec's buffered files: from the open
        if isinstance(size, int):
            return size
        try:
            import os

            return os.fstat(self.f.fileno()).st_size  # the inode that was opened
        except (AttributeError, OSError, ValueError, NotImplementedError, TypeError):
            return int(store.fs.size(key))

    def readinto_at(self, mv: memoryview, offset: int) -> int:
        if offset >= self.size:
            return 0
        with self._lock:
            self.f.seek(offset)
            readinto = getattr(self.f, "readinto", None)
            if readinto is not None:
                return int(readinto(mv) or 0)
            data = self.f.read(len(mv))
        mv[:len(data)] = data
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.f.close()


class _SnapshotSource(ByteSource):
    """An in-memory object as it was at open (the memory filesystem)."""

    def __init__(self, store: FsspecStore, key: str):
        self.name = store.describe(key)
        try:
            with store._lock:
                data = store.fs.cat_file(key)
        except Exception as exc:
            raise wrap(exc, "read", self.name, reading=True) from exc
        self._mv = memoryview(data).cast("B")
        self.size = len(self._mv)

    def readinto_at(self, mv: memoryview, offset: int) -> int:
        part = self._mv[offset:offset + len(mv)]
        mv[:len(part)] = part
        return len(part)

    def mapping(self) -> memoryview | None:
        return self._mv.toreadonly()


# ---------------------------------------------------------------------------------------------

_Infos = list[FileInfo]
_Uploads = list[UploadInfo]


class FsspecStore(Store):
    """A :class:`~mindckpt.storage.base.Store` over an fsspec filesystem ``fs``.

    Keys are the filesystem's paths (``bucket/run1/net.ckpt`` for S3); messages name them as
    URLs.  ``part_size`` (>= 5 MiB) and ``max_concurrency`` bound the memory of a multipart
    save ((max_concurrency + 2) * part_size) and of a read (1.5 * readahead; ``read_chunk`` is
    the span of one range request of a large read, streamed into the destination).  ``write_strategy`` overrides the choice made from the protocol (see the
    module doc); ``conditional_writes=False`` makes ``create_only`` check, then write, for
    S3-compatible servers that do not honour ``If-None-Match``.
    """

    def __init__(self, fs: Any, *, part_size: int = DEFAULT_PART_SIZE,
                 max_concurrency: int = DEFAULT_CONCURRENCY,
                 read_chunk: int = DEFAULT_READ_CHUNK, readahead: int = DEFAULT_READAHEAD,
                 head_bytes: int = DEFAULT_HEAD_BYTES,
                 write_strategy: str | None = None, conditional_writes: bool = True):
        if int(part_size) < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (5 MiB, S3's "
                             f"smallest part), got {part_size}.")
        if min(int(max_concurrency), int(read_chunk), int(readahead)) < 1 or int(head_bytes) < 0:
            raise ValueError("max_concurrency, read_chunk and readahead must be >= 1, head_bytes "
                             f">= 0; got {max_concurrency}, {read_chunk}, {readahead}, "
                             f"{head_bytes}.")
        self.fs = fs
        self.protocol = _protocol(fs)
        self.part_size = int(part_size)
        self.max_concurrency = int(max_concurrency)
        self.read_chunk = int(read_chunk)
        self.readahead = int(readahead)
        self.head_bytes = int(head_bytes)
        self.conditional_writes = bool(conditional_writes)
        self._lock = threading.Lock()
        is_s3 = self.protocol in _S3_PROTOCOLS and hasattr(fs, "set_session")
        self._s3 = S3Objects(self, S3Client(fs)) if is_s3 else None
        if write_strategy is None:
            write_strategy = self._default_strategy()
        if write_strategy not in STRATEGIES:
            raise ValueError(f"write_strategy must be one of {STRATEGIES}, got {write_strategy!r}.")
        if write_strategy == "multipart" and self._s3 is None:
            raise ValueError(f"write_strategy='multipart' needs an S3 filesystem (s3fs), not "
                             f"{type(fs).__name__}.")
        self.write_strategy = write_strategy
        #: whether a published object survives a crash (object stores, fsync'ed local files)
        self.durable_capable = write_strategy != "buffer"

    def _default_strategy(self) -> str:
        if self._s3 is not None:
            return "multipart"
        if self.protocol in _RENAME_PROTOCOLS:
            return "rename"
        if self.protocol == "memory":
            return "buffer"
        if self.protocol in _UPLOAD_PROTOCOLS:
            return "upload"
        if self.protocol not in _warned:
            _warned.add(self.protocol)
            warnings.warn(
                f"mindckpt does not know whether {self.protocol}:// can replace a file "
                "atomically; it writes a temporary file and renames it (fs.mv). If that "
                "filesystem's mv is a copy, a reader may see a partial checkpoint during a save. "
                "See docs/remote.md.", RuntimeWarning, stacklevel=3)
        return "rename"

    # -- naming
    def describe(self, key: str) -> str:
        try:
            return str(self.fs.unstrip_protocol(key))
        except Exception:
            return f"{self.protocol}://{key}"

    def join(self, *parts: str) -> str:
        return posixpath.join(*parts)

    def parent(self, key: str) -> str:
        return posixpath.dirname(key.rstrip("/"))

    # -- writes
    def _begin(self, key: str, mode: int) -> PendingWrite:
        return self._pending(key, create_only=False)

    def _pending(self, key: str, create_only: bool) -> PendingWrite:
        if self.write_strategy == "multipart":
            return self._s3_objects().pending(key, create_only)
        if self.write_strategy == "buffer":
            return _BufferPending(self, key)
        if self.write_strategy == "upload":
            return _UploadPending(self, key, create_only=create_only)
        return _RenamePending(self, key)

    def create_only(self, key: str, data: bytes, *, durable: bool | None = None) -> None:
        """Write ``key`` only if it does not exist: ``If-None-Match: *`` on S3, mode ``"xb"``
        (``ifGenerationMatch=0``) on GCS, a hard link (local), a check under the store's lock
        (memory); elsewhere (and with ``conditional_writes=False``) a check, then the write."""
        if self.write_strategy in ("multipart", "upload") and self.conditional_writes:
            from .base import AtomicWrite

            with AtomicWrite(self._pending(key, create_only=True), self.describe(key),
                             durable) as w:
                w.write(data)
            return
        if self.write_strategy == "rename" and self.protocol in _RENAME_PROTOCOLS:
            self._create_only_link(key, data, durable)
            return
        with self._lock if self.write_strategy == "buffer" else contextlib.nullcontext():
            if self.exists(key):
                raise StorageError(f"{self.describe(key)} already exists; refusing to overwrite it.")
            if self.write_strategy == "buffer":
                self.fs.pipe_file(key, bytes(data))
                return
        self.write_bytes(key, data, durable=durable)

    def _create_only_link(self, key: str, data: bytes, durable: bool | None) -> None:
        import os

        from .local import fsync_dir

        path = self.fs._strip_protocol(key)
        directory = os.path.dirname(path) or "."
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                if durable is None or durable:
                    os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # fails if the target exists: race-free create-only
            except FileExistsError:
                raise StorageError(f"{self.describe(key)} already exists; refusing to overwrite "
                                   "it.") from None
        except CheckpointError:
            raise
        except OSError as exc:
            raise wrap(exc, "save", self.describe(key)) from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if durable is None or durable:
            fsync_dir(directory)

    # -- reads
    def open_read(self, key: str) -> ByteSource:
        if self._s3 is not None:
            return self._s3.open_read(key)
        if self.write_strategy == "buffer":
            return _SnapshotSource(self, key)
        if not self.exists(key):
            raise self.missing(key)
        if self.isdir(key):
            raise CheckpointNotFoundError(
                f"The checkpoint file {self.describe(key)} is a directory, not a checkpoint file.")
        return _FileSource(self, key)

    # -- namespace (S3: asked of the server every time; elsewhere the cache is dropped first)
    def _ls(self, directory: str) -> builtins.list[dict[str, Any]]:
        """The filesystem's fresh detailed listing of ``directory`` ([] when missing)."""
        try:
            self.fs.invalidate_cache(directory)
            return list(self.fs.ls(directory, detail=True))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except Exception as exc:
            raise wrap(exc, "list", self.describe(directory)) from exc

    def list(self, directory: str) -> _Infos:
        if self._s3 is not None:
            return self._s3.list(directory)
        out = []
        for e in self._ls(directory):
            name = str(e["name"])
            if e.get("type") != "file" or TEMP_PATTERN.match(posixpath.basename(name)):
                continue
            mtime = as_epoch(e.get("mtime") or e.get("LastModified") or e.get("created")
                             or e.get("updated"))
            key = posixpath.join(directory, posixpath.basename(name))
            out.append(FileInfo(key, int(e.get("size") or 0), mtime))
        return out

    def remove(self, key: str) -> None:
        if not self.exists(key):
            raise self.missing(key)
        if self._s3 is not None:
            self._s3.remove(key)
            return
        try:
            self.fs.rm_file(key)
            self.fs.invalidate_cache(self.parent(key))
        except Exception as exc:
            raise wrap(exc, "remove", self.describe(key)) from exc

    def exists(self, key: str) -> bool:
        if self._s3 is not None:
            return self._s3.exists(key)
        try:
            self.fs.invalidate_cache(key)
            return bool(self.fs.exists(key))
        except Exception as exc:
            raise wrap(exc, "check", self.describe(key), reading=True) from exc

    def list_dirs(self, directory: str) -> builtins.list[str]:
        if self._s3 is not None:
            return self._s3.list_dirs(directory)
        return sorted(posixpath.join(directory, posixpath.basename(str(e["name"]).rstrip("/")))
                      for e in self._ls(directory) if e.get("type") == "directory")

    def remove_tree(self, directory: str) -> None:
        if self._s3 is not None:
            self._s3.remove_tree(directory)
            return
        try:
            self.fs.invalidate_cache(directory)
            for key in self.fs.find(directory):  # the objects, then what holds them
                self.fs.rm_file(key)
            self.fs.invalidate_cache(directory)
            if self.fs.exists(directory):  # filesystems with real (now empty) directories
                self.fs.rm(directory, recursive=True)
            self.fs.invalidate_cache(self.parent(directory))
        except Exception as exc:
            raise wrap(exc, "remove", self.describe(directory)) from exc

    def isdir(self, key: str) -> bool:
        if self._s3 is not None:
            return self._s3.isdir(key)
        try:
            self.fs.invalidate_cache(key)
            return bool(self.fs.isdir(key))
        except Exception:
            return False

    def makedirs(self, directory: str) -> None:
        """Create ``directory`` where the filesystem has directories; on S3 check the bucket
        (prefixes need no creating), so that a missing bucket fails before a save starts."""
        if self._s3 is not None:
            self._s3.check_bucket(directory)
            return
        if self.write_strategy == "buffer" and self.protocol == "memory":
            return
        try:
            self.fs.makedirs(directory, exist_ok=True)
        except Exception as exc:
            raise wrap(exc, "create", self.describe(directory)) from exc

    # -- crashed uploads (S3)
    def incomplete_uploads(self, directory: str) -> _Uploads:
        """Unfinished multipart uploads of objects directly under ``directory`` (S3; empty
        elsewhere): writers killed mid-save leave them (invisible, but stored and billed)."""
        return [] if self._s3 is None else self._s3.incomplete_uploads(directory)

    def abort_incomplete_uploads(self, directory: str, older_than: float = 24 * 3600.0,
                                 now: Callable[[], float] | None = None) -> _Uploads:
        """Abort the unfinished uploads under ``directory`` started more than ``older_than``
        seconds ago (a live writer's upload is younger than its save); return them."""
        if self._s3 is None:
            return []
        return self._s3.abort_incomplete_uploads(directory, older_than, now)

    def _s3_objects(self) -> S3Objects:
        if self._s3 is None:  # pragma: no cover - callers check the strategy first
            raise StorageError("this operation needs an S3 filesystem")
        return self._s3

    def _s3_client(self) -> S3Client:
        return self._s3_objects().s3
