"""One background checkpoint writer: a staged host snapshot, then the write off the caller's path.

``save_checkpoint(..., async_save=...)`` and ``ModelCheckpoint`` hand their collected records
(``[(name, ndarray | str), ...]``, the arrays possibly *views* of live parameters) and a ``write``
callable (``write(records)`` performs the whole synchronous save) to :func:`submit`.

Guarantees
----------
* **Snapshot at call time.** :func:`submit` returns once the data is captured; changing the
  parameters afterwards never changes the file.
* **At most one save in flight.** The next :func:`submit` first waits for the previous one, and
  raises its error (if any) instead of starting a new save.
* **Errors are never only printed.** A background failure is stored and raised, exactly once, as
  :class:`mindckpt.errors.AsyncSaveError` (the cause chained) at the next save, at :func:`wait`, or at
  interpreter exit. At exit the traceback is printed to stderr and the process exit status is forced
  to 1 (``os._exit(1)`` after flushing stdio and logging), because an atexit hook cannot otherwise
  change the exit status.

Modes
-----
``"thread"`` (also ``True``)
    Every array is copied with ``numpy.copyto`` into one **reused** host arena: an anonymous private
    mapping sized to the total bytes (64-byte aligned slots), advised for transparent huge pages and
    grown only when a bigger model arrives. After the first save the arena is already faulted in,
    so the caller stalls for about one memcpy of the model. A non-daemon thread named
    ``asyn_save_ckpt`` (MindSpore's name) then runs ``write`` on views into the arena.
``"process"``
    The caller forks (``os.fork``) right away, without the arena copy: the child's copy-on-write
    address space *is* the snapshot, so the caller stalls only for the page-table copy of the fork.
    The child runs ``write`` and leaves with ``os._exit``; a failure travels back through a pipe as
    text and is raised in the parent as ``AsyncSaveError``. The parent pays copy-on-write faults for
    the pages it modifies while the child is alive. The child runs only the writer (numpy and file
    I/O), never torch kernels, so forking a multi-threaded trainer is safe for this use. Where
    ``os.fork`` does not exist (Windows), ``"process"`` falls back to ``"thread"``.

MindSpore, for comparison, deep-copies every array into fresh memory for a thread save (1.0 s and
+1.25 GiB for a 1 GiB model here) and only prints worker errors.
"""

from __future__ import annotations

import atexit
import functools
import logging
import mmap
import os
import sys
import threading
import time
import traceback
from typing import Any
from collections.abc import Callable, Sequence

import numpy as np

from mindckpt.errors import AsyncSaveError
from mindckpt.tensor import dtype_of_torch, is_device_tensor, is_torch_tensor, torch_to_numpy

__all__ = ["submit", "wait", "thread_status", "async_ckpt_thread_status", "ASYNC_THREAD_NAME"]

ASYNC_THREAD_NAME = "asyn_save_ckpt"
_ALIGN = 64
_ARENA_GRANULE = 2 << 20  # arena sizes are rounded up to 2 MiB (one huge page)

_logger = logging.getLogger("mindckpt")

Record = tuple  # (name, numpy.ndarray | str | bytes)


class _Arena:
    """One reusable host buffer for snapshots; grows, never shrinks."""

    def __init__(self) -> None:
        self._mmap: mmap.mmap | None = None
        self.buffer: np.ndarray = np.empty(0, dtype=np.uint8)

    @property
    def capacity(self) -> int:
        return int(self.buffer.nbytes)

    def reserve(self, nbytes: int) -> np.ndarray:
        if nbytes <= self.capacity:
            return self.buffer
        size = -(-nbytes // _ARENA_GRANULE) * _ARENA_GRANULE
        self._unpin()
        # Drop the old arena first so that peak memory stays at one arena.
        self.buffer = np.empty(0, dtype=np.uint8)
        self._mmap = None
        try:
            flags = mmap.MAP_PRIVATE | getattr(mmap, "MAP_ANONYMOUS", 0x20)
            mm = mmap.mmap(-1, size, flags=flags)
            if hasattr(mm, "madvise") and hasattr(mmap, "MADV_HUGEPAGE"):
                try:
                    mm.madvise(mmap.MADV_HUGEPAGE)
                except OSError:
                    pass
            self._mmap = mm
            self.buffer = np.frombuffer(mm, dtype=np.uint8)
        except (AttributeError, OSError, ValueError, TypeError):  # no anonymous mmap: heap
            self.buffer = np.empty(size, dtype=np.uint8)
        return self.buffer

    def release(self) -> None:
        self._unpin()
        self.buffer = np.empty(0, dtype=np.uint8)
        self._mmap = None

    _pinned: int = 0  # address registered with CUDA (page-locked), 0 if none

    def pin(self) -> None:
        """Page-lock the arena for CUDA (once per mapping) so device-to-host copies run at
        full bus speed; silently stays pageable where that is not possible."""
        addr = self.buffer.ctypes.data if self.buffer.nbytes else 0
        if not addr or self._pinned == addr:
            return
        self._unpin()
        try:
            import torch

            err = torch.cuda.cudart().cudaHostRegister(addr, self.buffer.nbytes, 0)
            if int(getattr(err, "value", err)) == 0:
                self._pinned = addr
        except Exception:  # noqa: BLE001 - pinning is an optimisation only
            pass

    def _unpin(self) -> None:
        if self._pinned:
            try:
                import torch

                torch.cuda.cudart().cudaHostUnregister(self._pinned)
            except Exception:  # noqa: BLE001
                pass
            self._pinned = 0


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _snapshot(records: Sequence[Record], arena: _Arena, device_only: bool = False) -> list:
    """Copy every array of ``records`` into the arena; return records that point into it.

    torch tensors on the host are copied like arrays; tensors on a device (CUDA) are copied
    straight from the device into the arena (page-locked once), then synchronised: one copy.
    With ``device_only`` host values are passed through (the process mode's fork snapshots
    them).
    """
    def nbytes_of(value: Any) -> int:
        if isinstance(value, np.ndarray):
            return 0 if value.dtype.kind in "OV" or device_only else value.nbytes
        if is_device_tensor(value):
            return value.numel() * value.element_size()
        if is_torch_tensor(value) and not device_only:
            return value.numel() * value.element_size()
        return 0

    total = sum(_aligned(nbytes_of(v)) for _n, v in records)
    buf = arena.reserve(total)
    staged: list = []
    offset = 0
    synced: set = set()
    for name, value in records:
        if is_device_tensor(value):
            import torch

            arena.pin()
            t = dtype_of_torch(value.dtype)
            if t is None:
                raise TypeError(f"async save: record {name!r} has unsupported dtype {value.dtype}")
            n = value.numel() * value.element_size()
            slot = buf[offset : offset + n]
            dst_t = torch.from_numpy(slot).view(value.dtype).view(value.shape)
            dst_t.copy_(value, non_blocking=True)
            synced.add(value.device)
            staged.append((name, slot.view(t.np_dtype).reshape(tuple(value.shape))))
            offset += _aligned(n)
            continue
        if is_torch_tensor(value):
            if device_only:
                staged.append((name, value))
                continue
            value = torch_to_numpy(value)  # type: ignore[assignment]
        if isinstance(value, np.ndarray):
            if device_only:
                staged.append((name, value))
                continue
            if value.dtype.kind in "OV":  # object/void arrays cannot live in raw bytes
                staged.append((name, np.array(value, copy=True)))
                continue
            nbytes = value.nbytes
            dst = buf[offset : offset + nbytes].view(value.dtype).reshape(value.shape)
            np.copyto(dst, value, casting="no")
            staged.append((name, dst))
            offset += _aligned(nbytes)
        elif isinstance(value, (str, bytes)):
            staged.append((name, value))  # immutable
        elif isinstance(value, (bytearray, memoryview)):
            staged.append((name, bytes(value)))
        else:
            raise TypeError(
                f"async save: record {name!r} has a value of type {type(value).__name__}; "
                "expected numpy.ndarray, torch.Tensor, str or bytes"
            )
    if synced:
        import torch

        for device in synced:
            torch.cuda.synchronize(device)
    return staged


def _describe(write: Callable[..., Any]) -> str:
    """A short name for the save (its target path when ``write`` is a partial over a path)."""
    if isinstance(write, functools.partial) and write.args:
        return str(write.args[0])
    return getattr(write, "__qualname__", repr(write))


class _Job:
    """The one in-flight save."""

    def __init__(self, mode: str, target: str) -> None:
        self.mode = mode
        self.target = target
        self.started = time.perf_counter()
        self.thread: threading.Thread | None = None
        self.pid: int | None = None
        self.pipe_r: int | None = None
        self.error: BaseException | None = None
        self.finished = False

    def is_alive(self) -> bool:
        if self.finished:
            return False
        if self.thread is not None:
            return self.thread.is_alive()
        if self.pid is not None:
            try:
                pid, _status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            self._finish_process(_status)
            return False
        return False

    def join(self) -> None:
        if self.finished:
            return
        if self.thread is not None:
            self.thread.join()
            self.finished = True
            return
        if self.pid is not None:
            try:
                _pid, status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                status = None
            self._finish_process(status)

    def _finish_process(self, status: int | None) -> None:
        if self.finished:
            return
        self.finished = True
        message = b""
        if self.pipe_r is not None:
            chunks = []
            while True:
                chunk = os.read(self.pipe_r, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
            os.close(self.pipe_r)
            self.pipe_r = None
            message = b"".join(chunks)
        if status is None:
            self.error = RuntimeError("the save process was reaped by someone else")
        elif os.WIFSIGNALED(status):
            self.error = RuntimeError(
                f"the save process was killed by signal {os.WTERMSIG(status)}"
            )
        elif os.WEXITSTATUS(status) != 0:
            text = message.decode("utf-8", "replace").strip() or "no error text"
            self.error = RuntimeError(
                f"the save process exited with status {os.WEXITSTATUS(status)}: {text}"
            )


_lock = threading.RLock()
_arena = _Arena()
_job: _Job | None = None
_fork_ok = hasattr(os, "fork")


def _raise_job_error(job: _Job) -> None:
    err = job.error
    if err is None:
        return
    job.error = None  # raised once
    raise AsyncSaveError(
        f"The background ({job.mode}) save of {job.target} failed: {type(err).__name__}: {err}. "
        "The file was not written (any previous file of that name is left as it was); "
        "fix the cause and save again."
    ) from err


def wait() -> None:
    """Block until the in-flight async save (if any) has finished; raise its error once."""
    global _job
    with _lock:
        job = _job
        if job is None:
            return
        job.join()
        _job = None
        _raise_job_error(job)


def thread_status() -> bool:
    """True while an async save (thread or process) is still running."""
    with _lock:
        return _job is not None and _job.is_alive()


def async_ckpt_thread_status() -> bool:
    """Deprecated MindSpore helper: whether an async checkpoint save is running.

    Unlike MindSpore (which looks only for a thread and says ``False`` during a ``"process"`` save),
    this reports a running save of either kind.
    """
    import warnings

    msg = (
        "The interface 'mindspore.async_ckpt_thread_status' is deprecated from version 2.5 "
        "and will be removed in a future version."
    )
    _logger.warning(msg)
    warnings.warn(msg, DeprecationWarning, stacklevel=2)
    return thread_status()


def _thread_body(job: _Job, write: Callable[[list], Any], staged: list) -> None:
    try:
        write(staged)
    except BaseException as exc:  # stored, raised at the next save / wait / exit
        job.error = exc


def submit(records: Sequence[Record], write: Callable[[list], Any], mode: Any = "thread") -> None:
    """Snapshot ``records`` and run ``write(snapshot)`` in the background.

    Waits for (and raises the error of) the previous async save first. ``mode`` is ``"thread"``
    (or ``True``) or ``"process"``; the caller validated it already.
    """
    global _job
    if mode is True:
        mode = "thread"
    if mode not in ("thread", "process"):
        raise ValueError(
            f"For 'save_checkpoint', the argument 'async_save' can only be 'process' or 'thread',"
            f"but got {mode}."
        )
    with _lock:
        wait()
        target = _describe(write)
        if mode == "process" and _fork_ok:
            _submit_process(records, write, target)
            return
        staged = _snapshot(records, _arena)
        job = _Job("thread", target)
        thread = threading.Thread(
            target=_thread_body, args=(job, write, staged), name=ASYNC_THREAD_NAME, daemon=False
        )
        job.thread = thread
        _job = job
        thread.start()


def _submit_process(records: Sequence[Record], write: Callable[[list], Any], target: str) -> None:
    global _job
    # the fork is the snapshot of host memory; device tensors are copied to the host first
    # (a forked child cannot use CUDA)
    if any(is_device_tensor(v) for _n, v in records):
        staged = _snapshot(records, _arena, device_only=True)
    else:
        staged = list(records)
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_fd)
            write(staged)
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            code = 1
            try:
                text = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exception(exc))
                os.write(write_fd, text.encode("utf-8", "replace")[:60000])
            except BaseException:  # noqa: BLE001
                pass
        finally:
            os._exit(code)
    os.close(write_fd)
    job = _Job("process", target)
    job.pid = pid
    job.pipe_r = read_fd
    _job = job


def _at_exit() -> None:
    """Finish the in-flight save; a failure is printed and turns the exit status into 1."""
    try:
        wait()
    except AsyncSaveError:
        traceback.print_exc(file=sys.stderr)
        sys.stderr.write(
            "mindckpt: an asynchronous checkpoint save failed (see above); exiting with status 1.\n"
        )
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            logging.shutdown()
        finally:
            os._exit(1)


atexit.register(_at_exit)
