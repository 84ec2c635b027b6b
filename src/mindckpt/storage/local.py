"""Local files: the :class:`~mindckpt.storage.base.Store` over the operating system's files.

Writes (the primitives of :class:`~mindckpt.storage.base.AtomicWrite`): the data goes to a
uniquely named temporary file ``.{name}.XXXXXXXX.tmp`` in the target's directory, locked
(``flock``) for as long as its writer lives; ``sync`` is ``fsync``; ``publish`` makes the file
read-only (0400, as MindSpore leaves its checkpoints) and ``os.replace``-s it over the target;
``sync_parent`` ``fsync``-s the directory.  While a durable file grows, its written ranges are
handed to the kernel's writeback (``sync_file_range``) so that the final ``fsync`` has little
left to do.  Unlike MindSpore, nothing is deleted before the new file is complete.

Temporary files of writers that died (``kill -9``, power loss) are removed at the next write to
the same directory: a temp file whose lock can be taken has no live writer.  A live writer's file
is never touched.

Reads: :class:`FileSource`, positional ``preadv`` straight into the caller's buffer, and an
optional read-only memory map of the whole file.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import ctypes.util
import errno
import mmap
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from typing import Any

from ..errors import CheckpointNotFoundError, MissingDirectoryError, StorageError
from .base import AtomicWrite, ByteSource, FileInfo, PendingWrite, Store

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LocalStore", "FileSource", "LOCAL", "fsync_dir", "TEMP_PATTERN"]

READ_ONLY = 0o400
TEMP_PATTERN = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")
_FRESH_SECONDS = 5.0
_WRITEBACK_EVERY = 64 << 20  # start writeback of each 64 MiB written (durable saves)


def _load_sync_file_range() -> Any:
    if not hasattr(os, "sched_getaffinity"):  # Linux only
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def fsync_dir(path: str) -> None:
    """fsync a directory; errors are raised (a directory that cannot be opened on this
    platform, such as on Windows, is skipped)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (PermissionError, IsADirectoryError):
        if os.name == "nt":
            return
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: Any) -> None:
    mv = memoryview(data).cast("B")
    while mv:
        n = os.write(fd, mv)
        mv = mv[n:]


class _LocalPending(PendingWrite):
    def __init__(self, path: str, mode: int):
        self.path = path
        self.mode = mode
        directory, base = os.path.split(path)
        self.directory = directory or "."
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=self.directory)
        except FileNotFoundError:
            raise MissingDirectoryError(
                f"Cannot save {path}: its directory {self.directory} does not exist; create it "
                "first."
            ) from None
        except OSError as exc:
            raise StorageError(
                f"Cannot save {path}: creating a file in {self.directory} failed "
                f"({exc.strerror or exc}); check the permissions and free space."
            ) from exc
        self.fd: int | None = fd
        if fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the fd closes
        self.size = 0
        self._flushed = 0
        self._writeback = False

    def write(self, data: Any) -> None:
        if self.fd is None:
            raise StorageError(f"write to {self.path} after it was closed")
        try:
            _write_all(self.fd, data)
        except OSError as exc:
            err = StorageError(
                f"Failed to save {self.path}: writing failed ({exc.strerror or exc}). The file "
                "was not written; any previous file of that name is unchanged."
                + (" Free some disk space." if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "")
            )
            err.errno = exc.errno
            raise err from exc
        self.size += memoryview(data).nbytes
        if self._writeback:
            self.start_writeback()

    def will_sync(self, durable: bool) -> None:
        self._writeback = durable and _sync_file_range is not None

    def start_writeback(self) -> None:
        if _sync_file_range is None or self.fd is None:
            return
        if self.size - self._flushed >= _WRITEBACK_EVERY:
            _sync_file_range(self.fd, self._flushed, self.size - self._flushed,
                             _SYNC_FILE_RANGE_WRITE)
            self._flushed = self.size

    def sync(self) -> None:
        os.fsync(self._fd())

    def _fd(self) -> int:
        if self.fd is None:
            raise StorageError(f"{self.path}: the write was already closed")
        return self.fd

    def publish(self) -> None:
        fd = self._fd()
        os.fchmod(fd, self.mode) if hasattr(os, "fchmod") else os.chmod(self.tmp, self.mode)
        os.replace(self.tmp, self.path)
        self.fd = None
        try:
            os.close(fd)
        except OSError as exc:
            # already renamed: say what is true
            from ..errors import DurabilityError

            raise DurabilityError(
                f"{self.path} is in place, but closing it failed ({exc.strerror or exc}); it "
                "may be incomplete on storage that reports write errors at close (NFS). Check "
                "it with `mindckpt verify`, or save again."
            ) from exc

    def sync_parent(self) -> None:
        fsync_dir(self.directory)

    def discard(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)

    def written(self) -> int:
        return self.size


class FileSource(ByteSource):
    """Positional reads of one local file (``os.preadv`` into the caller's buffer)."""

    def __init__(self, path: str, fd: int, size: int):
        self.name = path
        self.path = path
        self.fd: int | None = fd
        self.size = size
        self._map: mmap.mmap | None = None

    def readinto_at(self, mv: memoryview, offset: int) -> int:
        if self.fd is None:
            raise StorageError(f"{self.path} is closed")
        if offset >= self.size:
            return 0
        return os.preadv(self.fd, [mv], offset)

    def mapping(self) -> memoryview | None:
        if self.size == 0 or self.fd is None:
            return None
        if self._map is None:
            try:
                # copy-on-write: arrays on it are writable, and writes never reach the file
                self._map = mmap.mmap(self.fd, self.size, access=mmap.ACCESS_COPY)
            except (OSError, ValueError):
                return None
        return memoryview(self._map)

    def fileno(self) -> int | None:
        return self.fd

    def advise_sequential(self) -> None:
        if self.fd is not None and hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):
                os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)

    def close(self) -> None:
        # an mmap stays valid after its fd is closed; arrays built on it keep it alive
        self._map = None
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


def clean_stale_temps(directory: str) -> list[str]:
    """Remove temp files of dead writers in ``directory``; return their paths."""
    removed: list[str] = []
    if fcntl is None:
        return removed
    try:
        names = [n for n in os.listdir(directory) if TEMP_PATTERN.match(n)]
    except OSError:
        return removed
    for name in names:
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live writer holds it
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                continue
            if st.st_size == 0 and time.time() - st.st_mtime < _FRESH_SECONDS:
                continue  # possibly a writer between creating and locking its file
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed.append(path)
        finally:
            os.close(fd)
    return removed


class LocalStore(Store):
    """The local filesystem; keys are paths."""

    def _begin(self, key: str, mode: int) -> PendingWrite:
        self.clean_stale_temps(os.path.dirname(key) or ".")
        return _LocalPending(key, mode)

    def open_write(self, key: str, *, durable: bool | None = None,
                   mode: int = READ_ONLY) -> AtomicWrite:
        return super().open_write(key, durable=durable, mode=mode)

    def open_read(self, key: str) -> FileSource:
        try:
            fd = os.open(key, os.O_RDONLY)
        except FileNotFoundError:
            raise self.missing(key) from None
        except IsADirectoryError:
            raise CheckpointNotFoundError(
                f"The checkpoint file {key} is a directory, not a checkpoint file; pass the path "
                "of a file inside it."
            ) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise CheckpointNotFoundError(f"{key} is not a regular file.")
        except BaseException:
            os.close(fd)
            raise
        return FileSource(key, fd, st.st_size)

    def list(self, directory: str) -> list[FileInfo]:
        out: list[FileInfo] = []
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return out
        for e in entries:
            try:
                if not e.is_file():
                    continue
                st = e.stat()
            except OSError:
                continue
            out.append(FileInfo(os.path.join(directory, e.name), st.st_size, st.st_mtime))
        return out

    def remove(self, key: str) -> None:
        try:
            os.remove(key)
        except FileNotFoundError:
            raise self.missing(key) from None
        except PermissionError:
            # 0400 files in a writable directory are removable; on platforms that refuse, retry
            os.chmod(key, stat.S_IWUSR | stat.S_IRUSR)
            os.remove(key)

    def exists(self, key: str) -> bool:
        return os.path.exists(key)

    def list_dirs(self, directory: str) -> builtins.list[str]:
        try:
            with os.scandir(directory) as it:
                return sorted(e.path for e in it if e.is_dir(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def remove_tree(self, directory: str) -> None:
        def writable(func: Any, path: str, _exc: Any) -> None:
            os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)  # 0400 parts on platforms that care
            func(path)

        if os.path.isdir(directory):
            if sys.version_info >= (3, 12):  # onerror is deprecated there
                shutil.rmtree(directory, onexc=writable)
            else:
                shutil.rmtree(directory, onerror=writable)

    def isdir(self, key: str) -> bool:
        return os.path.isdir(key)

    def makedirs(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)

    def join(self, *parts: str) -> str:
        return os.path.join(*parts)

    def parent(self, key: str) -> str:
        return os.path.dirname(key)

    clean_stale_temps = staticmethod(clean_stale_temps)


LOCAL = LocalStore()
