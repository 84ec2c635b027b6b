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
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from mindckpt import policies
from mindckpt.async_writer import AsyncWriter
from mindckpt.storage.base import FileInfo, Store
from mindckpt.storage.local import LOCAL
from mindckpt.storage.urls import is_url, resolve

__all__ = ["CheckpointManager", "resolve_directory"]

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
            keyword arguments); :meth:`save` may override them per call.
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
        # retention waiting for the async save: (directory, prefixes, key, save time, previous)
        self._pending: tuple[str, list[str], str, float, float] | None = None
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

    def all(self) -> list[str]:
        """Keys of the complete checkpoints this manager manages, oldest first."""
        return [f.key for f in sorted(self._managed(), key=self._age)]

    def _age(self, info: FileInfo) -> tuple[float, int, int, int, str]:
        """Oldest first: by mtime, then (object stores keep whole seconds) by run, epoch and
        step parsed from the name, then by name."""
        for prefix in self.prefixes:
            parsed = policies.parse_name(info.name, prefix)
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
        """Save ``save_obj`` as ``{prefix}-{epoch}_{step}.{fmt}`` (or ``name``); return its key.

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
            self._pending = (self.directory, self.prefixes, key, save_time, previous)
            if not async_save:
                self._apply_retention()
        return key

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
        directory, prefixes, key, save_time, previous = pending
        listing = self.store.list(directory)
        if not any(f.key == key for f in listing):  # the save did not complete
            return []
        doomed: list[FileInfo] = []
        if self.retention is not None:
            files = policies.managed(listing, prefixes, self.format)
            doomed = self.retention.select(files, key, save_time, previous)
        if self.retire_files:
            extra = set(self.retire_files) - {key}
            self.retire_files = []
            doomed += [f for f in listing if f.key in extra]
        deleted: list[str] = []
        for f in doomed:
            try:
                self.store.remove(f.key)
                deleted.append(f.key)
            except OSError as exc:
                _logger.warning("Failed to remove the checkpoint file %s: %s", f.key, exc)
        return deleted
