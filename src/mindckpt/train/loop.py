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

With ``optimizer=``, checkpoints hold the model *and* the optimizer state (``TrainState``), like
MindSpore's ``TrainOneStepCell``; ``TrainState.restore`` puts both back.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal
from collections.abc import Iterator, Sequence

from mindckpt.train.callback import InternalCallbackParam, RunContext
from mindckpt.train.state import TrainState

__all__ = ["CheckpointLoop", "TrainState"]

_logger = logging.getLogger("mindckpt")

class CheckpointLoop:
    """Context manager and iterator of ``(epoch, step)`` that drives callbacks.

    Args:
        callbacks: callbacks (``ModelCheckpoint`` and others) or a single one.
        network: the torch module (or mindckpt Cell) being trained.
        epochs: last epoch number (absolute, like ``Model.train(epoch=...)``).
        steps_per_epoch: steps in one epoch (``batch_num``).
        optimizer: if given, checkpoints also hold its state (see ``TrainState``).
        initial_epoch: epochs already done (when resuming).
        **fields: extra ``cb_params`` entries.

    ``timings`` holds the seconds spent inside the callbacks, per hook.
    """

    def __init__(
        self,
        callbacks: Any,
        network: Any,
        epochs: int,
        steps_per_epoch: int,
        *,
        optimizer: Any = None,
        initial_epoch: int = 0,
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
        train_network = TrainState(network, optimizer) if optimizer is not None else network
        self.cb_params = InternalCallbackParam(
            train_network=train_network,
            network=network,
            optimizer=optimizer,
            epoch_num=self.epochs,
            batch_num=int(steps_per_epoch),
            cur_epoch_num=self.initial_epoch,
            cur_step_num=0,
            net_outputs=None,
            mode="train",
            **fields,
        )
        self.run_context = RunContext(self.cb_params)
        self.timings: dict[str, float] = {}
        self._entered = False

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

    def __enter__(self) -> CheckpointLoop:
        self._entered = True
        self._call("on_train_begin")
        return self

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if not self._entered:
            raise RuntimeError(
                "use CheckpointLoop as a context manager: `with CheckpointLoop(...)`"
            )
        p = self.cb_params
        rc = self.run_context
        for epoch in range(self.initial_epoch + 1, self.epochs + 1):
            p.cur_epoch_num = epoch
            self._call("on_train_epoch_begin")
            stop = False
            for step in range(1, p.batch_num + 1):
                p.cur_step_num += 1
                self._call("on_train_step_begin")
                yield epoch, step
                self._call("on_train_step_end")
                if rc.get_stop_requested():
                    stop = True
                    break
            self._call("on_train_epoch_end")
            if stop or rc.get_stop_requested():
                return

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if exc is None or isinstance(exc, GeneratorExit):
            self._call("on_train_end")
            return False
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
