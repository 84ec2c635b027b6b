"""Finding the checkpoint to resume from: :func:`latest_checkpoint`."""

from __future__ import annotations

import logging
from typing import Any

from mindckpt import policies
from mindckpt.errors import CheckpointError, DecryptionError
from mindckpt.manager import committed_directories, rank_directory, resolve_directory

__all__ = ["latest_checkpoint", "CheckpointPath"]

_logger = logging.getLogger("mindckpt")


class CheckpointPath(str):
    """A checkpoint path (a ``str``: pass it to ``load_checkpoint``) with what its name says.

    Attributes: ``prefix`` (the run's prefix: ``mlp`` or ``mlp_1`` ...), ``epoch``, ``step``
    (in the epoch), ``breakpoint`` (True for ``*_breakpoint.ckpt``, written when training
    failed), ``fmt`` (``"ckpt"`` or ``"safetensors"``) and ``mtime``.
    """

    prefix: str
    epoch: int
    step: int
    breakpoint: bool
    fmt: str
    mtime: float

    def __new__(cls, path: str, name: policies.CheckpointName, mtime: float) -> CheckpointPath:
        self = super().__new__(cls, path)
        self.prefix = name.prefix
        self.epoch = name.epoch
        self.step = name.step
        self.breakpoint = name.breakpoint
        self.fmt = name.format
        self.mtime = mtime
        return self

    def __repr__(self) -> str:
        kind = ", breakpoint" if self.breakpoint else ""
        return f"CheckpointPath({str(self)!r}, epoch={self.epoch}, step={self.step}{kind})"


def _complete(path: str, storage_options: dict[str, Any] | None) -> bool:
    """Whether the file scans as a whole checkpoint (headers only; encrypted files are trusted:
    they cannot be scanned without the key)."""
    from mindckpt.handle import open_checkpoint

    kwargs: dict[str, Any] = {}
    if storage_options:
        kwargs["storage_options"] = storage_options
    try:
        with open_checkpoint(path, **kwargs) as f:
            f.keys()
    except DecryptionError:
        return True
    except (CheckpointError, OSError) as exc:
        _logger.warning("Skipping the incomplete or unreadable checkpoint %s: %s", path, exc)
        return False
    return True


def latest_checkpoint(
    directory: Any,
    prefix: str,
    *,
    breakpoints: bool = True,
    verify: bool = True,
    storage_options: dict[str, Any] | None = None,
) -> CheckpointPath | None:
    """The newest complete checkpoint of ``prefix`` in ``directory``, or None.

    Looks at every run of the prefix (``prefix-E_S``, ``prefix_1-E_S``, ... : MindSpore renames
    a second run in the same directory), ``.ckpt`` and ``.safetensors``, and the breakpoint files
    (``prefix-E_S_breakpoint.ckpt``, marked ``.breakpoint``; ``breakpoints=False`` skips them).
    Newest means the latest modification time (then the later position).  With ``verify`` a
    candidate must scan as a whole checkpoint (headers only); a damaged one is skipped with a
    warning, and the next older one is returned.

    A distributed run's checkpoints count too (see :mod:`mindckpt.manager`): committed sliced
    checkpoint directories ``prefix-E_S/`` (their commit time is their mtime; a directory
    without its commit marker is skipped) and the integrated files of ``rank_<r>/``
    directories: this rank's own copy of each, else rank 0's (a run resumed on more ranks than
    it saved from: every rank's integrated file holds the whole model).
    """
    from mindckpt.parallel._dist import rank_of

    store, key = resolve_directory(directory, storage_options)
    items = policies.newest(store.list(key), prefix)
    # rank_<r>/ files: this rank's own copy of each checkpoint, else rank 0's (a stale file
    # of an earlier, larger run never hides a newer checkpoint the other ranks resume from)
    per_rank = {info.name: (info, name) for info, name in
                policies.newest(store.list(rank_directory(store, key, 0)), prefix)}
    rank = rank_of()
    if rank != 0:
        per_rank.update((info.name, (info, name)) for info, name in
                        policies.newest(store.list(rank_directory(store, key, rank)), prefix))
    items += per_rank.values()
    committed = committed_directories(store, key)
    sliced = {info.key for info, _fmt in committed}
    for info, fmt in committed:
        parsed = policies.parse_name(f"{info.name}.{fmt}", prefix)
        if parsed is not None:
            items.append((info, parsed))
    items.sort(key=lambda fp: (fp[0].mtime, fp[1].epoch, fp[1].step, fp[1].breakpoint,
                               fp[0].name))
    for info, name in reversed(items):
        if name.breakpoint and not breakpoints:
            continue
        path = info.key if store.describe(info.key) == info.key else store.describe(info.key)
        if verify and info.key not in sliced and not _complete(path, storage_options):
            continue
        return CheckpointPath(path, name, info.mtime)
    return None
