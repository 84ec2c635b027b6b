"""Drive MindSpore-style callbacks (``ModelCheckpoint``) from a plain PyTorch loop.

::

    import mindckpt as ms
    from mindckpt.train.loop import CheckpointLoop

    ckpt = ms.ModelCheckpoint("mlp", "ckpt", ms.CheckpointConfig(save_checkpoint_steps=100,
                                                                 keep_checkpoint_max=3,
                                                                 async_save=True))
    with CheckpointLoop([ckpt], model, epochs=5, steps_per_epoch=len(loader),
                        optimizer=opt) as loop:
        for epoch, step in loop:
            loss = train_step(...)
            loop.net_outputs = loss.item()

The loop fills ``cb_params`` like ``Model.train`` does (``cur_epoch_num`` absolute, ``cur_step_num``
counted from 1 in this run, ``batch_num``, ``epoch_num``, ``train_network``, ``network``), calls the
``on_train_*`` hooks, honours ``run_context.request_stop()``, calls ``on_train_end`` when the block
ends normally (also after ``break``: the step you break from counts as done, so the end save is
labelled with it; to stop after a finished step, call ``loop.run_context.request_stop()``), and on an exception (``KeyboardInterrupt`` included) calls
``on_train_exception`` on every callback, which writes the breakpoint file of a ``ModelCheckpoint``
with ``exception_save=True``, then lets the exception propagate unchanged.

With ``optimizer=`` (and ``scheduler=``, ``scaler=``), checkpoints hold the whole training state
(:class:`~mindckpt.train.state.TrainState`: model, optimizer, schedulers, scaler, RNG states and
the data position), like MindSpore's ``TrainOneStepCell``.

Resuming
--------
``CheckpointLoop(..., resume=True)`` (or ``resume=<checkpoint path>``) restores all of it from the
newest complete checkpoint of the first ``ModelCheckpoint``'s directory and prefix (breakpoint
files included, see :func:`~mindckpt.train.latest_checkpoint`) and continues at the exact next
step, mid-epoch included: the iterator starts at ``(epoch, step + 1)`` of the restored position.
Nothing to resume from (a first run) starts from the beginning, so one script serves both::

    with CheckpointLoop([ckpt], model, epochs=5, steps_per_epoch=len(loader), optimizer=opt,
                        scheduler=sched, resume=True) as loop:
        for epoch, step in loop:
            batch = batches_of_epoch(epoch)[step - 1]   # data order a function of the epoch
            ...

The data order must be reproducible from ``(epoch, step)`` (a sampler seeded by the epoch, as
``DistributedSampler.set_epoch`` does); the global RNG states are restored as they were after the
resumed step.  When resuming into the checkpoint's own directory, the resumed run keeps the
original prefix (no ``prefix_N`` rename) and retires the earlier runs' files by the same
``keep_checkpoint_max`` rule, so the limit holds over the whole job (``retire_previous=False`` to
keep them).

A step counts as done once its iteration returned to the loop, or, with ``optimizer=``, once
``optimizer.step()`` returned inside it: the breakpoint file written on an interrupt records the
last step whose update is in its weights (an interrupt in ``backward`` records the step before).
Step a per-step LR scheduler right after ``optimizer.step()``: an interrupt between the two is the
one window where the saved scheduler is one step behind.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np

from mindckpt.train.callback import InternalCallbackParam, RunContext
from mindckpt.train.resume import CheckpointPath, latest_checkpoint
from mindckpt.train.state import TrainState, capture_rng

__all__ = ["CheckpointLoop", "TrainState"]

_logger = logging.getLogger("mindckpt")

def _position(global_step: int, batch_num: int) -> tuple[int, int]:
    """(epoch, step in epoch) of global step ``global_step`` (counted from 1; 0 -> (0, 0))."""
    if global_step <= 0:
        return 0, 0
    return (global_step - 1) // batch_num + 1, (global_step - 1) % batch_num + 1


def _int(value: Any) -> int:
    if hasattr(value, "asnumpy"):
        value = value.asnumpy()
    return int(np.asarray(value))


class CheckpointLoop:
    """Context manager and iterator of ``(epoch, step)`` that drives callbacks.

    Args:
        callbacks: callbacks (``ModelCheckpoint`` and others) or a single one.
        network: the torch module (or mindckpt Cell) being trained.
        epochs: last epoch number (absolute, like ``Model.train(epoch=...)``).
        steps_per_epoch: steps in one epoch (``batch_num``).
        optimizer: if given, checkpoints hold the whole :class:`TrainState`.
        scheduler: an LR scheduler (or a list), saved and restored with it.
        scaler: a ``torch.amp.GradScaler``, saved and restored with it.
        rng: save and restore the RNG states (default: when a TrainState is saved).
        extra: a dict of anything else to save and restore (``loop.state.extra`` after resume).
        initial_epoch: epochs already done (MindSpore's ``Model.train(initial_epoch=)``).
        resume: ``True`` (the newest checkpoint of the first ``ModelCheckpoint``, or a fresh
            start if there is none), a checkpoint path, or None/False.
        retire_previous: retire the earlier runs' checkpoints of the same prefix (default: when
            resuming into the checkpoint's own directory).
        **fields: extra ``cb_params`` entries.

    ``timings`` holds the seconds spent inside the callbacks, per hook; ``resumed_from`` the
    checkpoint restored (a :class:`CheckpointPath`, or None); ``global_step`` the steps done
    since the job began.
    """

    def __init__(
        self,
        callbacks: Any,
        network: Any,
        epochs: int,
        steps_per_epoch: int,
        *,
        optimizer: Any = None,
        scheduler: Any = None,
        scaler: Any = None,
        rng: bool | None = None,
        extra: dict[str, Any] | None = None,
        initial_epoch: int = 0,
        resume: Any = None,
        retire_previous: bool | None = None,
        **fields: Any,
    ) -> None:
        if callbacks is None:
            callbacks = []
        elif not isinstance(callbacks, Sequence):
            callbacks = [callbacks]
        if steps_per_epoch <= 0:
            raise ValueError(f"steps_per_epoch must be > 0, got {steps_per_epoch}.")
        self.callbacks = list(callbacks)
        self.epochs = int(epochs)
        self.initial_epoch = int(initial_epoch)
        self.batch_num = int(steps_per_epoch)
        self.optimizer = optimizer
        self.resume = resume
        self.retire_previous = retire_previous
        self.resumed_from: CheckpointPath | None = None
        full = optimizer is not None or scheduler is not None or scaler is not None
        self.state: TrainState | None = None
        if full or extra is not None or rng:
            self.state = TrainState(
                network, optimizer, scheduler, scaler, rng=full if rng is None else rng,
                extra=extra,
            )
        self.cb_params = InternalCallbackParam(
            train_network=self.state if self.state is not None else network,
            network=network,
            optimizer=optimizer,
            epoch_num=self.epochs,
            batch_num=self.batch_num,
            cur_epoch_num=self.initial_epoch,
            cur_step_num=0,
            net_outputs=None,
            mode="train",
            **fields,
        )
        self.run_context = RunContext(self.cb_params)
        self.timings: dict[str, float] = {}
        self.global_step = self.initial_epoch * self.batch_num
        self._entered = False
        self._in_step = False
        self._stepped = False
        self._hook: Any = None
        self._rng_at_step_begin: dict[str, Any] | None = None
        # the RNG states at each step's beginning are kept only when a breakpoint may need them
        self._keep_rng = self.state is not None and self.state.rng and any(
            getattr(getattr(cb, "_config", None), "exception_save", False) for cb in self.callbacks
        )

    # ------------------------------------------------------------------ properties
    @property
    def net_outputs(self) -> Any:
        return self.cb_params.net_outputs

    @net_outputs.setter
    def net_outputs(self, value: Any) -> None:
        self.cb_params.net_outputs = value

    @property
    def callback_seconds(self) -> float:
        """Total seconds spent in callbacks (saves, waits, retention)."""
        return sum(self.timings.values())

    def _call(self, hook: str) -> None:
        t0 = time.perf_counter()
        try:
            for cb in self.callbacks:
                getattr(cb, hook)(self.run_context)
        finally:
            self.timings[hook] = self.timings.get(hook, 0.0) + time.perf_counter() - t0

    def _checkpoint_callbacks(self) -> list[Any]:
        from mindckpt.train.callback import ModelCheckpoint

        return [cb for cb in self.callbacks if isinstance(cb, ModelCheckpoint)]

    def _set_position(self) -> None:
        if self.state is not None:
            epoch, step = _position(self.global_step, self.batch_num)
            self.state.position = {
                "epoch": epoch,
                "step": step,
                "global_step": self.global_step,
                "steps_per_epoch": self.batch_num,
            }

    # ------------------------------------------------------------------ resume
    def _find_resume(self) -> CheckpointPath | None:
        resume = self.resume
        if resume is None or resume is False:
            return None
        if isinstance(resume, CheckpointPath):
            return resume
        cbs = self._checkpoint_callbacks()
        if resume is True or resume == "latest":
            if not cbs or cbs[0]._directory is None or callable(cbs[0]._exception_prefix):
                raise ValueError(
                    "CheckpointLoop(resume=True) finds the checkpoint through the first "
                    "ModelCheckpoint's directory and prefix (a string); pass one, or pass the "
                    "checkpoint path: resume='path/to/file.ckpt'."
                )
            found = latest_checkpoint(cbs[0]._directory, cbs[0]._exception_prefix)
            if found is None:
                _logger.info("CheckpointLoop(resume=True): no checkpoint yet in %s; starting "
                             "from the beginning.", cbs[0]._directory)
            return found
        import os

        from mindckpt import policies

        path = os.path.realpath(os.fspath(resume))
        if not os.path.isfile(path):
            from mindckpt.errors import CheckpointNotFoundError

            raise CheckpointNotFoundError(
                f"CheckpointLoop(resume={resume!r}): {path} is not a checkpoint file; pass an "
                "existing file or resume=True for the newest one."
            )
        base = os.path.basename(path)
        for cb in cbs:
            if isinstance(cb._exception_prefix, str):
                name = policies.parse_name(base, cb._exception_prefix)
                if name is not None:
                    return CheckpointPath(path, name, os.path.getmtime(path))
        m = re.fullmatch(r"(.*?)-(\d+)_(\d+)(_breakpoint)?\.(ckpt|safetensors)", base)
        name = policies.CheckpointName(
            m.group(1) if m else "", 0, int(m.group(2)) if m else 0, int(m.group(3)) if m else 0,
            bool(m and m.group(4)), base.rsplit(".", 1)[-1],
        )
        return CheckpointPath(path, name, os.path.getmtime(path))

    def _restore(self, found: CheckpointPath) -> int:
        """Load ``found`` into the model and the rest; return the global step it holds."""
        from mindckpt._api import load_checkpoint, load_param_into_net

        cbs = self._checkpoint_callbacks()
        cfg = cbs[0]._config if cbs else None
        kwargs: dict[str, Any] = {"format": found.fmt}
        if cfg is not None and cfg.enc_key is not None and found.fmt == "ckpt":
            kwargs.update(dec_key=cfg.enc_key, dec_mode=cfg.enc_mode)
        params = load_checkpoint(str(found), **kwargs)
        global_step: int | None = None
        if self.state is not None:
            self.state.restore(params)
            if self.state.position is not None:
                global_step = int(self.state.position["global_step"])
        else:
            load_param_into_net(self.cb_params.network, params)
        if global_step is None and "step_num" in params and cfg is not None and cfg.append_dict \
                and "step_num" in cfg.append_dict:
            global_step = _int(params["step_num"])
        if global_step is None:  # from the name: epochs counted from 1, whole epochs before
            global_step = max(0, (found.epoch - 1) * self.batch_num + found.step)
        return global_step

    # ------------------------------------------------------------------ protocol
    def __enter__(self) -> CheckpointLoop:
        self._entered = True
        found = self._find_resume()
        if found is not None:
            self.global_step = self._restore(found)
            self.resumed_from = found
            epoch, _ = _position(self.global_step, self.batch_num)
            self.cb_params.cur_epoch_num = epoch
            self.cb_params.cur_step_num = self.global_step  # congruent with the global step
            _logger.info("Resuming from %s at global step %d.", found, self.global_step)
        self._set_position()
        if self.optimizer is not None and hasattr(self.optimizer, "register_step_post_hook"):
            self._hook = self.optimizer.register_step_post_hook(self._on_optimizer_step)
        self._call("on_train_begin")
        if found is not None:
            self._resume_callbacks(found)
        return self

    def _resume_callbacks(self, found: CheckpointPath) -> None:
        import os

        from mindckpt import policies
        from mindckpt.storage.local import LOCAL

        for cb in self._checkpoint_callbacks():
            base = cb._exception_prefix
            if not isinstance(base, str) or cb._directory is None:
                continue
            same_dir = os.path.dirname(os.path.realpath(str(found))) == cb._directory
            retire = self.retire_previous if self.retire_previous is not None else same_dir
            listing = LOCAL.list(cb._directory) if retire else []
            cb.resume_from(
                base if same_dir else cb._prefix,
                self.global_step,
                policies.run_prefixes(listing, base),
                [f.key for f, n in policies.newest(listing, base) if n.breakpoint],
            )

    def _on_optimizer_step(self, *_args: Any) -> None:
        self._stepped = True

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if not self._entered:
            raise RuntimeError(
                "use CheckpointLoop as a context manager: `with CheckpointLoop(...)`"
            )
        p = self.cb_params
        rc = self.run_context
        start_epoch = self.global_step // self.batch_num + 1
        start_step = self.global_step % self.batch_num + 1
        for epoch in range(start_epoch, self.epochs + 1):
            p.cur_epoch_num = epoch
            self._call("on_train_epoch_begin")
            stop = False
            for step in range(start_step if epoch == start_epoch else 1, p.batch_num + 1):
                p.cur_step_num += 1
                self._in_step, self._stepped = True, False
                if self._keep_rng:
                    self._rng_at_step_begin = capture_rng()
                self._call("on_train_step_begin")
                yield epoch, step
                self._in_step = False
                self.global_step += 1
                self._set_position()
                self._call("on_train_step_end")
                if rc.get_stop_requested():
                    stop = True
                    break
            self._call("on_train_epoch_end")
            if stop or rc.get_stop_requested():
                return

    def _settle_interrupted_step(self) -> None:
        """The step an exception interrupted: done if its optimizer step ran, else not."""
        if not self._in_step:
            return
        self._in_step = False
        p = self.cb_params
        if self._stepped:
            self.global_step += 1
        else:
            p.cur_step_num -= 1
            epoch, _ = _position(self.global_step, self.batch_num)
            p.cur_epoch_num = epoch
            if self.state is not None and self._rng_at_step_begin is not None:
                self.state.rng_override = self._rng_at_step_begin  # as after the done step
        self._set_position()

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if exc is None or isinstance(exc, GeneratorExit):
            self._call("on_train_end")
            return False
        self._settle_interrupted_step()
        for cb in self.callbacks:
            hook = getattr(cb, "on_train_exception", None)
            if hook is None:
                continue
            t0 = time.perf_counter()
            try:
                path = hook(self.run_context)
                if path:
                    _logger.warning("Training failed; breakpoint checkpoint saved to %s", path)
            except BaseException as err:  # noqa: BLE001 - never replace the training error
                # attached to the training exception (a note), never only logged
                _logger.error("Error while saving the breakpoint checkpoint: %r", err)
                exc.add_note(f"mindckpt: while saving the breakpoint checkpoint: {err!r}")
            finally:
                self.timings["on_train_exception"] = (
                    self.timings.get("on_train_exception", 0.0) + time.perf_counter() - t0
                )
        return False
