"""``CheckpointManager``: the lifecycle of a series of checkpoints in one directory.

It owns naming (``{prefix}-{epoch}_{step}.{fmt}``, MindSpore's), the save trigger, retention
after commit, its own :class:`~mindckpt.async_writer.AsyncWriter`, and the listing of what it
manages::

    mgr = CheckpointManager("ckpt", "mlp", trigger=TriggerPolicy(100, None),
                            retention=RetentionPolicy(3, None), async_save="thread")
    for step ...:
        if mgr.should_save(step):
            mgr.save(model, epoch=e, step=s)
    mgr.close()
    mgr.latest()  # the newest complete checkpoint it manages

Guarantees
----------
* Retention runs only once the new file is complete (for an async save: when it has finished,
  at the next ``save``/``wait``/``close``); a failed save deletes nothing.
* It deletes only regular checkpoints of its own prefix and format (``{prefix}-<digits>.{fmt}``)
  and, with ``retire=...``, of the earlier runs' prefixes it was given (plus the files listed in
  ``retire_files``, a resumed job's old breakpoint files); never other breakpoint files, never
  other names, never the file just written.
* Async saves go through the manager's own writer, so a user's ``save_checkpoint(...,
  async_save=True)`` never waits for (or is waited for by) the manager's save.

``directory`` is a local path or a URL (``s3://...``, ``memory://...``: resolved by
:func:`mindckpt.storage.urls.resolve`, ``storage_options`` passed on); listing and removal go
through that store.  The decisions themselves are the pure functions of :mod:`mindckpt.policies`.

In a distributed run
--------------------
When a process group is initialised, the saved object holds DTensors, or ``layouts=`` is given,
a save is a distributed one (:func:`mindckpt.parallel.save.save_distributed`, called by every
rank with the same arguments) and its naming is rank-aware:

* sliced (``integrated_save=False`` or ``remove_redundancy=True``): the checkpoint is the
  directory ``{prefix}-{epoch}_{step}/`` (``rank_<r>/{prefix}-{epoch}_{step}.{fmt}``, the
  strategy file, the index and, last, the commit marker); one directory shared by every rank;
* integrated with ``writer_rank=k``: ``{prefix}-{epoch}_{step}.{fmt}``, written by rank ``k``;
* integrated, every rank writing (MindSpore's default): in a directory every rank names alike,
  rank ``r`` writes ``rank_<r>/{prefix}-{epoch}_{step}.{fmt}`` (MindSpore's convention); where
  each rank names its own directory, the file goes there as it is.

Retention is applied by one rank only, once every rank's part is in place (after the commit of
a sliced save): rank 0 (the writer rank for ``writer_rank=k``; each rank for directories of its
own).  It deletes only committed checkpoints (an uncommitted directory, another rank's save in
progress or a failed one, is never touched) and never the new one; a sliced checkpoint loses its
commit marker first, so a half-deleted directory never looks complete.  :meth:`latest` and
:meth:`all` list committed directories only.  A failure on any rank raises on every rank
(:class:`~mindckpt.errors.DistributedCheckpointError`, naming the rank) and deletes nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mindckpt import policies
from mindckpt.async_writer import AsyncWriter
from mindckpt.storage.base import COMMIT_MARKER, FileInfo, Store, is_committed
from mindckpt.storage.local import LOCAL
from mindckpt.storage.urls import is_url, resolve

__all__ = ["CheckpointManager", "resolve_directory", "committed_directories", "rank_directory"]

_logger = logging.getLogger("mindckpt")


def resolve_directory(directory: Any, storage_options: dict[str, Any] | None = None) -> tuple[Store, str]:
    """``(store, key)`` of a checkpoint directory: a local path (its realpath) or a URL."""
    if isinstance(directory, os.PathLike):
        directory = os.fspath(directory)
    if isinstance(directory, str) and is_url(directory):
        return resolve(directory, storage_options)
    if not isinstance(directory, str):
        raise TypeError(
            f"CheckpointManager: 'directory' must be a str, os.PathLike or URL, not "
            f"{type(directory).__name__}."
        )
    return LOCAL, os.path.realpath(directory)


_FORMATS = ("ckpt", "safetensors")


def committed_directories(store: Store, directory: str) -> list[tuple[FileInfo, str]]:
    """The committed sliced checkpoints directly under ``directory``: ``(info, format)`` with
    the directory's key, the commit marker's modification time and the format of its
    ``rank_0/<name>.<fmt>`` file.  Directories without their commit marker (a save in progress
    or a failed one) are left out.  Any store that lists directories (local, memory, fsspec
    URLs, S3 prefixes)."""
    out = []
    for d in store.list_dirs(directory):
        marker = next((i for i in store.list(d) if i.name == COMMIT_MARKER), None)
        if marker is None:
            continue  # not a (complete) checkpoint
        name = d.rstrip("/").replace(os.sep, "/").rsplit("/", 1)[-1]
        for fmt in _FORMATS:
            if store.exists(store.join(d, "rank_0", f"{name}.{fmt}")):
                out.append((FileInfo(d, 0, marker.mtime), fmt))
                break
    return out


def rank_directory(store: Store, directory: str, rank: int) -> str:
    """``directory/rank_<rank>``, where every rank's own integrated file of a distributed run
    in a shared directory goes."""
    return store.join(directory, f"rank_{rank}")


def _remove(store: Store, info: FileInfo) -> None:
    """Delete a checkpoint file, or a sliced checkpoint directory (its commit marker first)."""
    if store.isdir(info.key):
        marker = store.join(info.key, COMMIT_MARKER)
        if store.exists(marker):
            store.remove(marker)
        store.remove_tree(info.key)
        return
    store.remove(info.key)


@dataclass
class _Pending:
    """Retention waiting for a save to be complete."""

    directory: str
    prefixes: list[str]
    key: str  # the new checkpoint (file or sliced directory)
    save_time: float
    previous: float
    layout: str = "file"  # "file" | "sliced" | "ranks" (rank_<r>/ files of a shared directory)
    deletes: bool = True  # whether this rank applies retention
    world_size: int = 1


def _plan_and_run(
    save_obj: Any, target: Any, writer: AsyncWriter, args: tuple, kwargs: dict[str, Any]
) -> Any:
    """``save_checkpoint`` on ``writer``: MindSpore's checks, collect, then the (async) write.

    Tests replace this to inject failures.
    """
    from mindckpt import _api

    job = _api.plan_save(save_obj, target, *args, **kwargs)
    return _api.run_save(job, writer)


class CheckpointManager:
    """A series of checkpoints of one prefix in one directory.

    Args:
        directory: a local path (created if missing) or a URL.
        prefix: the file name prefix (as is: MindSpore's ``prefix_N`` choice is the caller's,
            :func:`mindckpt.policies.dedup_prefix`).
        format: ``"ckpt"`` or ``"safetensors"``.
        trigger: a :class:`~mindckpt.policies.TriggerPolicy` for :meth:`should_save` (None:
            every call says yes).
        retention: a :class:`~mindckpt.policies.RetentionPolicy` (None: keep everything).
        retire: earlier run prefixes (``mlp``, ``mlp_1``, ...) whose regular checkpoints this
            manager's retention may retire too, so ``keep_max`` holds across restarts.
        storage_options: for URL directories.
        **save_options: ``save_checkpoint`` arguments used by every save (``integrated_save``,
            ``async_save``, ``enc_key``, ``enc_mode``, ``crc_check``, ``choice_func`` and its
            keyword arguments; in a distributed run also ``remove_redundancy``,
            ``writer_rank``, ``layouts`` and ``group``, see the module doc); :meth:`save` may
            override them per call.
    """

    def __init__(
        self,
        directory: Any,
        prefix: str = "CKP",
        *,
        format: str = "ckpt",  # noqa: A002 - MindSpore's keyword
        trigger: policies.TriggerPolicy | None = None,
        retention: policies.RetentionPolicy | None = None,
        retire: Sequence[str] = (),
        storage_options: dict[str, Any] | None = None,
        writer: AsyncWriter | None = None,
        **save_options: Any,
    ) -> None:
        if not isinstance(prefix, str) or "/" in prefix:
            raise ValueError(
                f"CheckpointManager: 'prefix' must be a str without '/', but got {prefix!r}."
            )
        self.store, self.directory = resolve_directory(directory, storage_options)
        self.store.makedirs(self.directory)
        self.prefix = prefix
        self.format = format
        self.trigger = trigger
        self.retention = retention
        self.retire = list(retire)
        #: keys removed once the next save is complete (a resumed job's old breakpoint files)
        self.retire_files: list[str] = []
        self.storage_options = storage_options
        self.save_options = save_options
        self.writer = writer if writer is not None else AsyncWriter()
        # retention waiting for the (async) save to be complete
        self._pending: _Pending | None = None
        self._closed = False

    # ------------------------------------------------------------------ naming and listing
    def key(self, name: str) -> str:
        """The store key of ``name`` in the directory."""
        return self.store.join(self.directory, name)

    def file_name(self, epoch: int, step: int) -> str:
        return policies.checkpoint_file_name(self.prefix, epoch, step, self.format)

    def listing(self) -> list[FileInfo]:
        return self.store.list(self.directory)

    @property
    def prefixes(self) -> list[str]:
        """The prefixes whose regular checkpoints retention manages: its own, then ``retire``."""
        return [self.prefix, *(p for p in self.retire if p != self.prefix)]

    def _managed(self, listing: Sequence[FileInfo] | None = None) -> list[FileInfo]:
        if listing is None:
            listing = self.listing()
        return policies.managed(listing, self.prefixes, self.format)

    def _sliced(self, directory: str | None = None) -> list[FileInfo]:
        """The committed sliced checkpoints of this manager's prefixes and format."""
        return [info for info, fmt in committed_directories(self.store,
                                                            directory or self.directory)
                if fmt == self.format and any(policies.is_managed(f"{info.name}.{fmt}", p, fmt)
                                              for p in self.prefixes)]

    def all(self) -> list[str]:
        """Keys of the complete checkpoints this manager manages, oldest first: its files,
        its committed sliced checkpoint directories and, in a distributed run's shared
        directory, this rank's ``rank_<r>/`` files (uncommitted directories are left out)."""
        from mindckpt.parallel._dist import rank_of

        found = self._managed() + self._sliced()
        found += self._managed(self.store.list(rank_directory(self.store, self.directory,
                                                              rank_of())))
        return [f.key for f in sorted(found, key=self._age)]

    def _age(self, info: FileInfo) -> tuple[float, int, int, int, str]:
        """Oldest first: by mtime, then (object stores keep whole seconds) by run, epoch and
        step parsed from the name, then by name."""
        name = info.name if info.name.endswith(f".{self.format}") else \
            f"{info.name}.{self.format}"  # a sliced checkpoint directory
        for prefix in self.prefixes:
            parsed = policies.parse_name(name, prefix)
            if parsed is not None:
                return (info.mtime, parsed.run, parsed.epoch, parsed.step, info.name)
        return (info.mtime, 0, 0, 0, info.name)

    def latest(self) -> str | None:
        """Key of the newest complete checkpoint this manager manages (None if none)."""
        found = self.all()
        return found[-1] if found else None

    # ------------------------------------------------------------------ saving
    def should_save(self, step: int, force: bool = False) -> bool:
        """The trigger's decision for global step ``step`` (records the save when yes)."""
        if self.trigger is None:
            return True
        return self.trigger.should_save(step, force)

    def save(
        self,
        save_obj: Any,
        *,
        epoch: int | None = None,
        step: int | None = None,
        name: str | None = None,
        append_dict: dict[str, Any] | None = None,
        retain: bool = True,
        **options: Any,
    ) -> str:
        """Save ``save_obj`` as ``{prefix}-{epoch}_{step}.{fmt}`` (or ``name``); return its key
        (in a distributed run: the sliced checkpoint's directory, or this rank's
        ``rank_<r>/`` file; see the module doc).

        The previous async save finishes first (its error is raised here and this save does not
        start), then its retention runs.  With ``retain`` (the default) retention runs after this
        save is complete: now for a synchronous save, at the next ``save``/``wait``/``close`` for
        an async one.  ``options`` override the manager's ``save_checkpoint`` arguments.
        """
        if self._closed:
            raise RuntimeError(f"CheckpointManager({self.directory}): save after close().")
        if name is None:
            if epoch is None or step is None:
                raise TypeError("CheckpointManager.save needs epoch= and step=, or name=.")
            name = self.file_name(epoch, step)
        key = self.key(name)
        opts = {**self.save_options, **options}
        if self.storage_options is not None:
            opts.setdefault("storage_options", self.storage_options)
        opts.setdefault("format", self.format)
        self.wait()
        save_time = policies.now()
        previous = self.retention.note_save(save_time) if self.retention else save_time
        if _distributed(save_obj, opts):
            return self._save_distributed(save_obj, name, opts, append_dict, retain,
                                          save_time, previous)
        integrated = opts.pop("integrated_save", True)
        async_save = opts.pop("async_save", False)
        enc_key = opts.pop("enc_key", None)
        enc_mode = opts.pop("enc_mode", "AES-GCM")
        target = key if self.store is LOCAL else self.store.describe(key)
        _plan_and_run(
            save_obj, target, self.writer,
            (integrated, async_save, append_dict, enc_key, enc_mode), opts,
        )
        if retain:
            self._pending = _Pending(self.directory, self.prefixes, key, save_time, previous)
            if not async_save:
                self._apply_retention()
        return key

    def _save_distributed(self, save_obj: Any, name: str, opts: dict[str, Any],
                          append_dict: dict[str, Any] | None, retain: bool, save_time: float,
                          previous: float) -> str:
        """:meth:`save` in a distributed run (module doc): every rank calls it alike."""
        from mindckpt.parallel import save as psave
        from mindckpt.parallel._dist import rank_of

        group = opts.pop("group", None)
        fmt = opts.pop("format")
        remove_redundancy = bool(opts.pop("remove_redundancy", False))
        integrated = bool(opts.pop("integrated_save", True)) and not remove_redundancy
        writer_rank = opts.pop("writer_rank", None)
        async_save = opts.pop("async_save", False)
        if opts.pop("incremental", False):
            raise ValueError("CheckpointManager: incremental (map_param_inc) saves are not "
                             "available in a distributed run; set it to False.")
        kwargs = {k: opts.pop(k) for k in ("layouts", "choice_func", "crc_check", "enc_key",
                                           "enc_mode", "storage_options", "durable")
                  if k in opts}
        if opts:
            raise TypeError(f"CheckpointManager: {sorted(opts)} cannot be used in a "
                            "distributed run.")
        rank = rank_of(group)
        here = self.store.describe(self.directory)
        directories = psave.exchange_objects(here, group)
        world = len(directories)
        shared = all(d == here for d in directories)
        key = self.key(name)
        layout, deletes, result = "file", True, key
        if not integrated:
            layout, deletes = "sliced", rank == 0
            result = key[: -len(fmt) - 1] if key.endswith(f".{fmt}") else key
        elif writer_rank is not None:
            deletes = rank == int(writer_rank)
        elif shared and world > 1:
            layout, deletes = "ranks", rank == 0
            key = result = self.store.join(rank_directory(self.store, self.directory, rank),
                                           name)
        target = key if self.store is LOCAL else self.store.describe(key)
        psave.save_distributed(
            save_obj, target, integrated_save=integrated, remove_redundancy=remove_redundancy,
            writer_rank=writer_rank, async_save=async_save, format=fmt,
            append_dict=append_dict, group=group, writer=self.writer, **kwargs)
        if retain:
            pending_key = result
            if layout == "ranks":  # rank 0 decides from its own files
                pending_key = self.store.join(rank_directory(self.store, self.directory, 0),
                                              name)
            self._pending = _Pending(self.directory, self.prefixes, pending_key, save_time,
                                     previous, layout, deletes, world)
            if not async_save:
                self._apply_retention()
        return result

    def wait(self) -> None:
        """Finish the in-flight save (raising its error once); then run its retention.

        A failed save's retention is dropped: older checkpoints stay.
        """
        try:
            self.writer.wait()
        except BaseException:
            self._pending = None
            raise
        self._apply_retention()

    def close(self) -> None:
        """``wait()``, then free the writer; later saves raise."""
        if self._closed:
            return
        self._closed = True
        try:
            self.wait()
        finally:
            self.writer.close()

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ retention
    def remove_retired_files(self, keep: str) -> list[str]:
        """Remove the ``retire_files`` now (but ``keep``): a newer complete checkpoint, e.g. a
        breakpoint file, supersedes them."""
        doomed, self.retire_files = [k for k in self.retire_files if k != keep], []
        deleted: list[str] = []
        for key in doomed:
            try:
                self.store.remove(key)
                deleted.append(key)
            except OSError as exc:
                _logger.warning("Failed to remove the checkpoint file %s: %s", key, exc)
        return deleted

    def _apply_retention(self) -> list[str]:
        pending, self._pending = self._pending, None
        if pending is None:
            return []
        if not pending.deletes:  # another rank applies it (distributed run)
            self.retire_files = []
            return []
        store, key = self.store, pending.key
        if pending.layout == "sliced":
            if not is_committed(store, key):  # the save did not complete
                return []
            files = self._sliced(pending.directory)
            listing: list[FileInfo] = files
        else:
            where = store.parent(key)
            listing = store.list(where)
            if not any(f.key == key for f in listing):  # the save did not complete
                return []
            files = policies.managed(listing, pending.prefixes, self.format)
        doomed: list[FileInfo] = []
        if self.retention is not None:
            doomed = self.retention.select(files, key, pending.save_time, pending.previous)
        if self.retire_files:
            extra = set(self.retire_files) - {key}
            self.retire_files = []
            doomed += [f for f in store.list(pending.directory) if f.key in extra]
        if pending.layout == "ranks":  # the same checkpoint in every rank's directory
            doomed = [FileInfo(store.join(rank_directory(store, pending.directory, r), f.name),
                               f.size, f.mtime)
                      for f in doomed for r in range(pending.world_size)]
        deleted: list[str] = []
        for f in doomed:
            try:
                _remove(store, f)
                deleted.append(f.key)
            except OSError as exc:
                if pending.layout == "ranks" and not store.exists(f.key):
                    continue  # that rank's copy was never there
                _logger.warning("Failed to remove the checkpoint %s: %s", f.key, exc)
        return deleted


def _distributed(save_obj: Any, opts: dict[str, Any]) -> bool:
    """Whether a save is a distributed one (module doc); imports no torch.distributed."""
    if opts.get("layouts") is not None or opts.get("group") is not None:
        return True
    from mindckpt.parallel._dist import active

    if active():
        return True
    from mindckpt.parallel.save import has_dtensors

    return has_dtensors(save_obj)
