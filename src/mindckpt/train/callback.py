"""``Callback``, ``RunContext`` and ``ModelCheckpoint``.

A training loop drives callbacks with a ``RunContext`` whose ``original_args()`` is an
``InternalCallbackParam`` (a dict with attribute access)::

    cb_params = InternalCallbackParam(train_network=net, batch_num=100, epoch_num=3,
                                      cur_epoch_num=0, cur_step_num=0)
    rc = RunContext(cb_params)
    ckpt.on_train_begin(rc)
    for epoch ...: cb_params.cur_epoch_num = epoch; for step ...:
        cb_params.cur_step_num += 1; ...; ckpt.on_train_step_end(rc)
    ckpt.on_train_end(rc)

On a failure the loop calls ``ckpt.on_train_exception(rc)`` (our addition; MindSpore does this from a
decorator around ``Model._train``), which writes the breakpoint file when ``exception_save=True``.
``mindckpt.train.loop.CheckpointLoop`` does all of this for a plain PyTorch loop.

Deviations from MindSpore 2.10 are listed in docs/deviations.md; the main ones:
state is reset at ``on_train_begin`` (a reused callback or config saves normally), retention runs
after the new file is complete, the config's ``append_dict`` is never mutated, and the breakpoint
file stores the global step and never replaces the user's exception.
"""

from __future__ import annotations

import logging
import os
from typing import Any
from collections.abc import Callable

from mindckpt import policies
from mindckpt.async_writer import AsyncWriter
from mindckpt.collect import collect
from mindckpt.errors import AsyncSaveError
from mindckpt.manager import (
    CheckpointManager,
    committed_directories,
    rank_directory,
    resolve_directory,
)
from mindckpt.storage.urls import is_url
from mindckpt.train.config import CheckpointConfig
from mindckpt.train.state import TrainState

__all__ = ["Callback", "RunContext", "InternalCallbackParam", "ModelCheckpoint"]

_logger = logging.getLogger("mindckpt")

#: ``mindspore.train.callback._checkpoint.SAVE_DIR``: the directory of the latest save.
SAVE_DIR = ""


def _listdir(directory: str) -> list[str]:
    """The checkpoint names in ``directory`` (MindSpore's ``prefix_N`` rule counts them): its
    files, its committed sliced checkpoint directories (as ``<name>.<fmt>``) and this rank's
    ``rank_<r>/`` files of a distributed run."""
    from mindckpt.parallel._dist import rank_of

    store, key = resolve_directory(directory)
    names = [f.name for f in store.list(key)]
    names += [f"{info.name}.{fmt}" for info, fmt in committed_directories(store, key)]
    names += [f.name for f in store.list(rank_directory(store, key, rank_of()))]
    return names


def _world_size() -> int:
    from mindckpt.parallel._dist import world_size_of

    return world_size_of()


class InternalCallbackParam(dict):
    """The ``cb_params`` dict: keys readable and writable as attributes.

    A missing attribute raises ``KeyError`` as in MindSpore (dunder names raise ``AttributeError``
    so that ``copy``/``pickle`` keep working).
    """

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__") and key.endswith("__"):
            raise AttributeError(key)
        return self[key]

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value


class RunContext:
    """Holds the callback parameters of a run and the stop request."""

    def __init__(self, original_args):
        if not isinstance(original_args, dict):
            raise TypeError(
                "The argument 'original_args' of RunContext should be dict type, "
                f"but got {type(original_args)}."
            )
        self._original_args = original_args
        self._stop_requested = False

    def original_args(self):
        """The ``cb_params`` object (an ``InternalCallbackParam``)."""
        return self._original_args

    def request_stop(self):
        """Ask the training loop to stop after the current step."""
        self._stop_requested = True

    def get_stop_requested(self):
        return self._stop_requested


class Callback:
    """Base class of training callbacks. The ``on_*`` hooks call the legacy ones by default."""

    def __enter__(self):
        return self

    def __exit__(self, *err):
        pass

    # legacy hooks
    def begin(self, run_context):
        """Called once before training."""

    def epoch_begin(self, run_context):
        """Called before each epoch."""

    def epoch_end(self, run_context):
        """Called after each epoch."""

    def step_begin(self, run_context):
        """Called before each step."""

    def step_end(self, run_context):
        """Called after each step."""

    def end(self, run_context):
        """Called once after training."""

    # train hooks
    def on_train_begin(self, run_context):
        self.begin(run_context)

    def on_train_epoch_begin(self, run_context):
        self.epoch_begin(run_context)

    def on_train_epoch_end(self, run_context):
        self.epoch_end(run_context)

    def on_train_step_begin(self, run_context):
        self.step_begin(run_context)

    def on_train_step_end(self, run_context):
        self.step_end(run_context)

    def on_train_end(self, run_context):
        self.end(run_context)

    def on_train_exception(self, run_context):
        """mindckpt addition: training is failing; called before the exception propagates."""

    # eval hooks
    def on_eval_begin(self, run_context):
        self.begin(run_context)

    def on_eval_epoch_begin(self, run_context):
        self.epoch_begin(run_context)

    def on_eval_epoch_end(self, run_context):
        self.epoch_end(run_context)

    def on_eval_step_begin(self, run_context):
        self.step_begin(run_context)

    def on_eval_step_end(self, run_context):
        self.step_end(run_context)

    def on_eval_end(self, run_context):
        self.end(run_context)


def _check_prefix(prefix: Any) -> None:
    if not callable(prefix) and (not isinstance(prefix, str) or "/" in prefix):
        raise ValueError(
            "For 'ModelCheckpoint', the argument 'prefix' for checkpoint file name is invalid, "
            f"it must be callable or string that does not contain '/', but got {prefix}."
        )


def _make_directory(path: Any) -> str:
    """MindSpore's ``_make_directory``: validate, create (leaf mode 0700), return the realpath.

    An fsspec URL (``s3://bucket/run1``) is returned as it is, after its store made it (object
    stores have no directories) and checked that it is not a file.
    """
    if not isinstance(path, str):
        raise TypeError("The path is invalid, the type should be string.")
    if not path.strip():
        raise ValueError("The path is invalid, it should be non-blank.")
    if is_url(path):
        store, key = resolve_directory(path)
        if store.exists(key) and not store.isdir(key):
            raise NotADirectoryError(
                f"The path({path}) is a file path, it should be a directory path."
            )
        store.makedirs(key)
        return path.rstrip("/")
    real = os.path.realpath(path)
    if len(real) > 1024:
        raise ValueError("The path length is too long, it should be limited in 1024.")
    if os.path.exists(real):
        if not os.path.isdir(real):
            raise NotADirectoryError(
                f"The path({real}) is a file path, it should be a directory path."
            )
        return real
    try:
        os.makedirs(real, mode=0o700, exist_ok=True)
    except PermissionError as exc:
        raise TypeError("No write permission on the directory.") from exc
    return real


class ModelCheckpoint(Callback):
    """Save checkpoints during training (see ``mindspore.train.ModelCheckpoint``).

    Args:
        prefix: file name prefix (str without ``/``) or a callable ``prefix(cb_params) -> str``.
        directory: where to save (created if missing), or a callable ``directory(cb_params)``.
            ``None`` means the current working directory at construction time.
        config: a :class:`CheckpointConfig`; ``None`` uses the defaults.
    """

    def __init__(self, prefix="CKP", directory=None, config=None):
        _check_prefix(prefix)
        self._prefix_func: Callable[..., str] | None = prefix if callable(prefix) else None
        self._directory_func: Callable[..., str] | None = None
        if directory is None:
            self._directory = os.path.realpath(os.getcwd())
        elif callable(directory):
            self._directory_func = directory
            self._directory = None
        else:
            self._directory = _make_directory(directory)

        if config is None:
            config = CheckpointConfig()
        elif not isinstance(config, CheckpointConfig):
            raise TypeError(
                "For 'ModelCheckpoint', the type of argument 'config' should be "
                f"'CheckpointConfig', but got {type(config)}."
            )
        self._config = config
        self._exception_prefix = prefix
        if self._prefix_func is None and self._directory_func is None:
            self._prefix = policies.dedup_prefix(_listdir(self._directory), prefix)
        else:
            self._prefix = prefix
        self._trigger = policies.TriggerPolicy(
            config.save_checkpoint_steps, config.save_checkpoint_seconds
        )
        self._retention = policies.RetentionPolicy(
            config.keep_checkpoint_max, config.keep_checkpoint_per_n_minutes
        )
        self._base_append = dict(config.append_dict or {})
        self._append_dict: dict[str, Any] = dict(self._base_append)
        self._latest_ckpt_file_name = ""
        self._manager: CheckpointManager | None = None  # made at the first save
        self._writer = AsyncWriter()  # its arena is prepared when training begins
        self._retire: list[str] = []  # earlier runs' prefixes retired too (resume)
        self._retire_files: list[str] = []  # earlier runs' breakpoint files (resume)
        self._runs = 0
        self._saved_in_run = False
        self._started = False

    # ------------------------------------------------------------------ public
    @property
    def latest_ckpt_file_name(self):
        """Full path of the last checkpoint this callback started to save (``""`` before)."""
        return self._latest_ckpt_file_name

    def begin(self, run_context):
        """Reset per-run state: a reused callback (or config) behaves like a fresh one."""
        if self._config.exception_save and _world_size() > 1:
            raise NotImplementedError(
                "ModelCheckpoint: CheckpointConfig(exception_save=True) is not available in a "
                "distributed run: a distributed save is collective, and a rank failing alone "
                "cannot run it (the other ranks would wait for it until the group's timeout). "
                "Set exception_save=False; the regular saves are committed on every rank.")
        self._runs += 1
        if self._runs > 1:
            self._trigger.reset()
            self._retention.reset()
            if self._saved_in_run and self._prefix_func is None and self._directory_func is None:
                # What a fresh ModelCheckpoint would pick now (MindSpore's prefix_N rule).
                self._prefix = policies.dedup_prefix(
                    _listdir(self._directory), self._exception_prefix
                )
        self._append_dict = dict(self._base_append)
        self._latest_ckpt_file_name = ""
        self._retire = []
        self._retire_files = []
        if self._manager is not None:
            self._manager.retire = []
            self._manager.retire_files = []
        self._saved_in_run = False
        self._started = False
        self._prepare_async(run_context)

    def _prepare_async(self, run_context) -> None:
        """Size and fault in the async snapshot buffer now, so the first save stalls no more
        than later ones (thread mode; the process mode's snapshot is the fork)."""
        if self._config.async_save not in (True, "thread") or _world_size() > 1:
            return  # a distributed save snapshots local slices: the full network's size is
            # not what it needs
        try:
            network = self._network(run_context.original_args())
        except (KeyError, AttributeError):  # no network known before the first step
            return
        if network is None:
            return
        try:
            records = collect(network)
        except (TypeError, ValueError):
            return  # the save itself will report what is wrong with the network
        self._writer.prepare(records)

    def step_end(self, run_context):
        cb_params = run_context.original_args()
        self._resolve_location(cb_params)
        if not self._started:
            # MindSpore reads train_network first here (to save the graph; PyNative has none).
            _ = cb_params.train_network
            self._started = True
        self._save_ckpt(cb_params)

    def end(self, run_context):
        cb_params = run_context.original_args()
        self._save_ckpt(cb_params, force_to_save=True)
        self._finish_async()

    def on_train_exception(self, run_context):
        """Write ``{prefix}-{epoch}_{step}_breakpoint.ckpt`` when ``exception_save=True``.

        Returns the path written, or ``None``. It may raise if the breakpoint save itself fails;
        the loop helper then keeps the training exception and attaches this failure as a note.
        """
        if not self._config.exception_save:
            return None
        return self._save_breakpoint(run_context.original_args())

    # ------------------------------------------------------------------ internals
    def _resolve_location(self, cb_params) -> None:
        if self._prefix_func is not None:
            value = self._prefix_func(cb_params)
            if not isinstance(value, str) or "/" in value:
                raise ValueError(
                    "For 'ModelCheckpoint', the argument 'prefix' for checkpoint file name is "
                    "callable, it must return a string that does not contain '/', "
                    f"but got {value}."
                )
            self._prefix = value
        if self._directory_func is not None:
            self._directory = _make_directory(self._directory_func(cb_params))

    def _network(self, cb_params):
        network = self._config.saved_network
        if network is None:
            network = cb_params.train_network
        if isinstance(network, TrainState):
            return network.checkpoint_state(text_as_bytes=self._config.format == "safetensors")
        return network

    @property
    def manager(self) -> CheckpointManager | None:
        """The :class:`~mindckpt.manager.CheckpointManager` behind this callback (made at the
        first save; ``None`` before)."""
        return self._manager

    def _manager_for(self, directory: str) -> CheckpointManager:
        mgr = self._manager
        store, key = resolve_directory(directory)
        if mgr is None:
            if self._writer.closed:
                self._writer = AsyncWriter()
            mgr = self._manager = CheckpointManager(
                directory, self._prefix, format=self._config.format, retention=self._retention,
                writer=self._writer,
            )
        elif (mgr.store, mgr.directory) != (store, key):
            mgr.wait()  # the pending retention runs in the old directory
            mgr.store, mgr.directory = store, key
        mgr.prefix = self._prefix
        mgr.format = self._config.format
        mgr.retire = list(self._retire)
        if self._retire_files:
            mgr.retire_files, self._retire_files = self._retire_files, []
        return mgr

    def _finish_async(self) -> None:
        """Wait for the in-flight async save; on success run its deferred retention."""
        if self._manager is not None:
            self._manager.wait()

    def close(self) -> None:
        """Finish the in-flight save (raising its error once) and free its buffer."""
        if self._manager is not None:
            self._manager.close()
            self._manager = None

    def resume_from(
        self,
        prefix: str,
        done_step: int,
        retire: list[str] | None = None,
        retire_files: list[str] | None = None,
    ) -> None:
        """Continue a job: save under ``prefix``, schedule the next save where the uninterrupted
        run's would be after global step ``done_step``, and retire the earlier runs' regular
        checkpoints of the ``retire`` prefixes by the same rules (and ``retire_files``, their
        breakpoint files, once this run's first checkpoint is complete).

        Called by :class:`~mindckpt.train.loop.CheckpointLoop` with ``resume=`` after
        ``on_train_begin``.
        """
        if self._prefix_func is None:
            self._prefix = prefix
        self._trigger.resume_at(done_step)
        self._retire = [p for p in (retire or []) if p != self._prefix]
        self._retire_files = list(retire_files or [])

    def _save_ckpt(self, cb_params, force_to_save=False) -> None:
        global SAVE_DIR
        cur_step = cb_params.cur_step_num
        if cur_step == self._trigger.last_triggered_step:
            return
        if not self._trigger.should_save(cur_step, force_to_save):
            return
        if self._config.remove_redundancy and _world_size() == 1:
            raise TypeError(
                "The deduplication feature for saving checkpoint can only be used in parallel "
                "scenarios, but got 'stand_alone'."
            )
        fmt = self._config.format
        if self._prefix_func is not None:
            file_name = f"{self._prefix}.{fmt}"
        else:
            in_epoch = policies.step_in_epoch(cur_step, cb_params.batch_num)
            file_name = policies.checkpoint_file_name(
                self._prefix, cb_params.cur_epoch_num, in_epoch, fmt
            )
        directory = self._directory
        mgr = self._manager_for(directory)
        if "epoch_num" in self._append_dict:
            self._append_dict["epoch_num"] = (
                self._base_append.get("epoch_num", 0) + cb_params.cur_epoch_num
            )
        if "step_num" in self._append_dict:
            self._append_dict["step_num"] = self._base_append.get("step_num", 0) + cur_step
        # The previous async save completes (and its retention runs) before the network is read.
        mgr.wait()
        network = self._network(cb_params)
        SAVE_DIR = directory
        cur_file = mgr.save(
            network,
            name=file_name,
            append_dict=dict(self._append_dict) if self._append_dict else None,
            integrated_save=self._config.integrated_save,
            async_save=self._config.async_save,
            enc_key=self._config.enc_key,
            enc_mode=self._config.enc_mode,
            crc_check=self._config.crc_check,
            format=fmt,
            incremental=self._config.map_param_inc,
            remove_redundancy=self._config.remove_redundancy,
            **({"writer_rank": self._config.writer_rank}
               if self._config.writer_rank is not None else {}),
        )
        self._latest_ckpt_file_name = mgr.store.describe(cur_file)
        self._saved_in_run = True

    def _save_breakpoint(self, cb_params) -> str | None:
        cur_step = int(cb_params.get("cur_step_num", 0) or 0)
        epoch = int(cb_params.get("cur_epoch_num", 0) or 0)
        batch_num = cb_params.get("batch_num") or 0
        in_epoch = policies.step_in_epoch(cur_step, batch_num) if cur_step > 0 and batch_num else 0
        # An in-flight async save finishes first; its error is raised after the breakpoint file
        # is written, for the training loop to attach to the training exception.
        earlier: BaseException | None = None
        try:
            self._finish_async()
        except BaseException as exc:  # noqa: BLE001
            earlier = exc
        directory = self._directory
        if self._directory_func is not None:
            directory = _make_directory(self._directory_func(cb_params))
        prefix = self._exception_prefix
        if callable(prefix):
            prefix = self._prefix if isinstance(self._prefix, str) else str(prefix(cb_params))
        prefix = policies.dedup_prefix(_listdir(directory), prefix, exception=True)
        name = policies.breakpoint_file_name(prefix, epoch, in_epoch)
        path = directory + "/" + name if is_url(directory) else os.path.join(directory, name)
        append = dict(self._base_append)
        if "epoch_num" in append:
            append["epoch_num"] = self._base_append.get("epoch_num", 0) + epoch
        if "step_num" in append:
            append["step_num"] = self._base_append.get("step_num", 0) + cur_step
        mgr = self._manager_for(directory)
        try:
            mgr.save(
                self._network(cb_params),
                name=name,
                append_dict=append or None,
                retain=False,
                integrated_save=self._config.integrated_save,
                async_save=False,
                enc_key=self._config.enc_key,
                enc_mode=self._config.enc_mode,
                crc_check=self._config.crc_check,
                format="ckpt",
            )
        except BaseException as exc:
            if earlier is not None and hasattr(exc, "add_note"):
                exc.add_note(f"An earlier asynchronous checkpoint save had failed too: {earlier!r}")
            raise
        mgr.remove_retired_files(keep=mgr.key(name))  # a resumed job's older breakpoints
        if earlier is not None:
            raise AsyncSaveError(
                f"The breakpoint checkpoint was saved to {path}, but an earlier asynchronous "
                f"checkpoint save had failed: {earlier}"
            ) from earlier
        return path
