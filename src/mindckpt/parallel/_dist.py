"""The process group, seen from a checkpoint: the only module that imports ``torch.distributed``.

Everything the distributed save and load need from the group goes through a :class:`Comm`:

* ``rank`` / ``world_size``;
* ``exchange(obj)``: every rank's JSON-able object, in rank order (``all_gather_object``);
* ``broadcast_bytes(buf, src)``, ``send_recv(pairs)``: raw bytes (any dtype travels as
  ``uint8``, so bfloat16 and every integer width work on gloo and NCCL alike);
* ``agree(error, stage)``: the failure protocol.  Every rank says whether its part of a stage
  failed; if any did, every rank raises :class:`DistributedCheckpointError` naming each failing
  rank and its error.  A rank that fails locally keeps taking part in the collectives of its
  stage (it sends zeros / drains what it receives), so a disk error never hangs the others.

Checkpoint traffic runs on its own gloo group (:func:`checkpoint_comm`), created once, on first
use, by every rank of the default group: checkpoint collectives never interleave with the
training job's, and an async save's background thread owns that group while it runs.  Device
(CUDA) tensors are copied to the host once before they travel, so NCCL jobs work unchanged.

:class:`LocalComm` is the one-process group (world size 1): the same code paths run without a
process group, for single-process use and fast tests.

``torch.distributed`` is imported only when a process group is actually used: :func:`active`
looks at ``sys.modules`` first, so a program that never imported it never pays for it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import CheckpointError, DistributedCheckpointError  # noqa: F401 - re-exported

__all__ = [
    "DistributedCheckpointError",
    "Comm",
    "LocalComm",
    "GroupComm",
    "active",
    "checkpoint_comm",
    "rank_of",
    "world_size_of",
]


def active() -> bool:
    """Whether a default process group is initialised (without importing torch.distributed)."""
    mod = sys.modules.get("torch.distributed")
    if mod is None:
        return False
    try:
        return bool(mod.is_available() and mod.is_initialized())
    except Exception:  # noqa: BLE001 - a half-initialised torch build: no group
        return False


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Comm:
    """The collectives a checkpoint needs (see the module doc)."""

    rank: int = 0
    world_size: int = 1

    def exchange(self, obj: Any) -> list[Any]:
        raise NotImplementedError

    def broadcast_bytes(self, buf: np.ndarray, src: int) -> None:
        """Fill ``buf`` (a C-contiguous array) on every rank with ``src``'s ``buf``."""
        raise NotImplementedError

    def send_recv(self, sends: Sequence[tuple[np.ndarray, int]],
                  recvs: Sequence[tuple[np.ndarray, int]]) -> None:
        """Post every send ``(array, to_rank)`` and receive ``(array, from_rank)``, then wait."""
        raise NotImplementedError

    def barrier(self) -> None:
        self.exchange(None)

    def agree(self, error: BaseException | str | None, stage: str) -> None:
        """Raise the same :class:`DistributedCheckpointError` on every rank if any rank failed."""
        mine = None if error is None else (error if isinstance(error, str) else _describe(error))
        reports = self.exchange(mine)
        failures = {r: msg for r, msg in enumerate(reports) if msg is not None}
        if not failures:
            return
        if isinstance(error, BaseException) and self.world_size == 1:
            raise error  # one process: the error as a plain save raises it
        who = "; ".join(f"rank {r}: {msg}" for r, msg in sorted(failures.items()))
        err = DistributedCheckpointError(
            f"{stage} failed on {len(failures)} of {self.world_size} rank(s) ({who}). Nothing "
            "was committed; a previous checkpoint, if any, is unchanged.", failures)
        if isinstance(error, BaseException):
            raise err from error
        raise err


class LocalComm(Comm):
    """World size 1: every collective is the identity."""

    def exchange(self, obj: Any) -> list[Any]:
        return [obj]

    def broadcast_bytes(self, buf: np.ndarray, src: int) -> None:
        if src != 0:
            raise ValueError(f"rank {src} does not exist in a one-process group")

    def send_recv(self, sends: Sequence[tuple[np.ndarray, int]],
                  recvs: Sequence[tuple[np.ndarray, int]]) -> None:
        if sends or recvs:
            raise ValueError("a one-process group has no peers to send to")


def _as_bytes_tensor(arr: np.ndarray) -> Any:
    import torch

    if not arr.flags.c_contiguous:
        raise ValueError("internal: only contiguous buffers travel")
    return torch.from_numpy(arr.reshape(-1).view(np.uint8))


class GroupComm(Comm):
    """A torch.distributed process group (gloo for the bytes; see the module doc)."""

    def __init__(self, group: Any = None):
        import torch.distributed as dist

        self._dist = dist
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)

    def _global(self, rank: int) -> int:
        if self.group is None:
            return rank
        return int(self._dist.get_global_rank(self.group, rank))

    def exchange(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.world_size
        self._dist.all_gather_object(out, obj, group=self.group)
        return out

    def broadcast_bytes(self, buf: np.ndarray, src: int) -> None:
        if buf.nbytes == 0:
            return
        self._dist.broadcast(_as_bytes_tensor(buf), src=self._global(src), group=self.group)

    def send_recv(self, sends: Sequence[tuple[np.ndarray, int]],
                  recvs: Sequence[tuple[np.ndarray, int]]) -> None:
        ops = []
        for arr, peer in recvs:
            if arr.nbytes:
                ops.append(self._dist.P2POp(self._dist.irecv, _as_bytes_tensor(arr),
                                            self._global(peer), self.group))
        for arr, peer in sends:
            if arr.nbytes:
                ops.append(self._dist.P2POp(self._dist.isend, _as_bytes_tensor(arr),
                                            self._global(peer), self.group))
        if not ops:
            return
        for work in self._dist.batch_isend_irecv(ops):
            work.wait()


_lock = threading.Lock()
_groups: dict[Any, GroupComm] = {}


def rank_of(group: Any = None) -> int:
    """This process's rank in ``group`` (0 outside a process group); not collective."""
    if group is None and not active():
        return 0
    import torch.distributed as dist

    return int(dist.get_rank(group))


def world_size_of(group: Any = None) -> int:
    """The size of ``group`` (1 outside a process group); not collective."""
    if group is None and not active():
        return 1
    import torch.distributed as dist

    return int(dist.get_world_size(group))


def checkpoint_comm(group: Any = None) -> Comm:
    """The checkpoint :class:`Comm` of this process: a gloo group beside ``group`` (default:
    the world), created once by every rank; :class:`LocalComm` outside a process group."""
    if group is None and not active():
        return LocalComm()
    import torch.distributed as dist

    # keyed by the default group too: a job that re-initialises its process group gets a new
    # checkpoint group
    key = (id(group) if group is not None else None, id(dist.group.WORLD))
    with _lock:
        comm = _groups.get(key)
        if comm is not None:
            return comm
        ranks = None
        if group is not None:
            ranks = [int(dist.get_global_rank(group, r))
                     for r in range(dist.get_world_size(group))]
        # its own group even when the job's is gloo: an async save's thread then never shares
        # a communicator with the training loop
        pg = dist.new_group(ranks=ranks, backend="gloo")
        comm = GroupComm(pg)
        _groups[key] = comm
        return comm
