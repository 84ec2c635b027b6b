"""``TrainState``: everything a torch training job needs to continue exactly, as one checkpoint.

One flat ``{name: entry}`` save object (what ``ModelCheckpoint`` saves when a loop hands it a
``TrainState``), with these names:

=======================  ====================================================================
``<model keys>``         the model's ``state_dict`` (MindSpore-style names: ``fc1.weight``)
``optimizer.*``          the optimizer's ``state_dict``, per-parameter state keyed by parameter
                         **name** (``optimizer.state.fc1.weight.exp_avg``), groups' ``params``
                         as names too, so a rebuilt model in another process maps back
``scheduler.*``          the LR scheduler's ``state_dict`` (``scheduler.0.*``, ... for a list)
``scaler.*``             the ``GradScaler``'s ``state_dict``
``rng.*``                ``python`` (``random.getstate()``), ``numpy``
                         (``numpy.random.get_state()``), ``torch`` (CPU generator) and ``cuda``
                         (every device's generator, when CUDA is initialised)
``loop.*``               the data position: ``epoch``, ``step`` (in the epoch), ``global_step``
                         (steps done since the job began), ``steps_per_epoch``
``extra.*``              anything else the caller hands in (``extra=``: nested dicts of scalars
                         and tensors, e.g. a sampler's position)
=======================  ====================================================================

Each non-model part is flattened with :func:`mindckpt.state.flatten_state` (typed entries and a
``<part>.__schema__`` string, no pickle), so MindSpore loads the file and :meth:`TrainState.restore`
puts every part back bitwise.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mindckpt.state import flatten_state, unflatten_state

__all__ = ["TrainState", "capture_rng", "restore_rng", "PARTS"]

#: The name prefixes of the non-model parts, in save order.
PARTS = ("optimizer", "scheduler", "scaler", "rng", "loop", "extra")


def capture_rng() -> dict[str, Any]:
    """Python's, NumPy's (global) and torch's RNG states (CUDA's when CUDA is initialised)."""
    out: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state()}
    try:
        import torch
    except ImportError:
        return out
    out["torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = list(torch.cuda.get_rng_state_all())
    return out


def restore_rng(state: Mapping[str, Any]) -> None:
    """Put back what :func:`capture_rng` captured."""
    if "python" in state:
        random.setstate(state["python"])
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    if "torch" in state or "cuda" in state:
        import torch

        if "torch" in state:
            torch.set_rng_state(state["torch"])
        if "cuda" in state:
            if not torch.cuda.is_available() or torch.cuda.device_count() < len(state["cuda"]):
                raise RuntimeError(
                    f"The checkpoint holds the RNG state of {len(state['cuda'])} CUDA device(s), "
                    f"but {torch.cuda.device_count() if torch.cuda.is_available() else 0} are "
                    "available; resume on a machine with as many devices, or pass rng=False."
                )
            torch.cuda.set_rng_state_all(state["cuda"])


class TrainState:
    """A torch model plus optimizer, scheduler(s), scaler, RNG and data position.

    Args:
        model: the ``torch.nn.Module`` (or a mindckpt ``Cell``) being trained.
        optimizer: a ``torch.optim.Optimizer`` or None.
        scheduler: an LR scheduler, a list of them, or None.
        scaler: a ``torch.amp.GradScaler`` or None.
        rng: capture and restore the RNG states (default True).
        extra: a dict of anything else to carry (flattened under ``extra.``).

    ``position`` (a dict, set by :class:`~mindckpt.train.loop.CheckpointLoop`) is saved as
    ``loop.*``.
    """

    def __init__(
        self,
        model: Any,
        optimizer: Any = None,
        scheduler: Any = None,
        scaler: Any = None,
        *,
        rng: bool = True,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = scaler
        self.rng = rng
        self.extra = extra
        self.position: dict[str, int] | None = None
        #: RNG states to save instead of the current ones (the loop sets it to the states at
        #: the beginning of a step an exception interrupted before its update)
        self.rng_override: dict[str, Any] | None = None

    # ------------------------------------------------------------------ optimizer <-> names
    def _param_names(self) -> list[str]:
        """Parameter name for each optimizer index (optimizer state_dict numbering)."""
        by_id = {id(p): name for name, p in self.model.named_parameters()}
        names: list[str] = []
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                names.append(by_id.get(id(p), f"param{len(names)}"))
        return names

    def _optimizer_state(self) -> dict[str, Any]:
        sd = self.optimizer.state_dict()
        names = self._param_names()
        return {
            "state": {names[i]: st for i, st in sd["state"].items()},
            "param_groups": [
                {**g, "params": [names[i] for i in g["params"]]} for g in sd["param_groups"]
            ],
        }

    def _load_optimizer(self, saved: Mapping[str, Any]) -> None:
        names = self._param_names()
        index = {name: i for i, name in enumerate(names)}
        try:
            state = {index[name]: st for name, st in saved["state"].items()}
            groups = [
                {**g, "params": [index[name] for name in g["params"]]}
                for g in saved["param_groups"]
            ]
        except KeyError as exc:
            raise ValueError(
                f"The checkpoint's optimizer state names the parameter {exc.args[0]!r}, which "
                "the optimizer does not hold: build the model and optimizer as in the run that "
                "saved it."
            ) from None
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})

    def _schedulers(self) -> list[Any]:
        if self.scheduler is None:
            return []
        if isinstance(self.scheduler, Sequence):
            return list(self.scheduler)
        return [self.scheduler]

    # ------------------------------------------------------------------ save / restore
    def checkpoint_state(self, *, text_as_bytes: bool = False) -> dict[str, Any]:
        """The save object: live model tensors, then the other parts, flattened.

        ``text_as_bytes`` stores the schema strings as UTF-8 byte arrays (safetensors files
        hold no strings; see :func:`mindckpt.state.flatten_state`).
        """
        out: dict[str, Any] = dict(self.model.state_dict())

        def add(part: str, value: Any) -> None:
            flat = flatten_state(value, part, text_as_bytes=text_as_bytes)
            clash = next((k for k in flat if k in out), None)
            if clash is not None:
                raise ValueError(
                    f"TrainState: the model has an entry {clash!r} that the {part} state uses "
                    "too; rename the module attribute."
                )
            out.update(flat)

        if self.optimizer is not None:
            add("optimizer", self._optimizer_state())
        scheds = self._schedulers()
        if scheds:
            add("scheduler", scheds[0].state_dict() if not isinstance(self.scheduler, Sequence)
                else [s.state_dict() for s in scheds])
        if self.scaler is not None:
            add("scaler", self.scaler.state_dict())
        if self.rng:
            add("rng", self.rng_override if self.rng_override is not None else capture_rng())
        if self.position is not None:
            add("loop", dict(self.position))
        if self.extra is not None:
            add("extra", self.extra)
        return out

    def restore(self, param_dict: dict[str, Any], strict_load: bool = False) -> tuple[list, list]:
        """Put ``load_checkpoint``'s result back into every part.

        Returns ``load_param_into_net``'s ``(param_not_load, ckpt_not_load)`` for the model
        part (``ckpt_not_load`` without the parts restored here).  The data position is in
        :attr:`position` afterwards (None if the file has none); ``extra`` replaces
        :attr:`extra`.
        """
        from mindckpt._api import load_param_into_net

        nested = unflatten_state(param_dict)
        parts = {p: nested.pop(p) for p in PARTS if p in nested}
        model_keys = set(self.model.state_dict())
        model_part = {k: v for k, v in nested.items() if k in model_keys}
        rest = [k for k in nested if k not in model_keys]
        param_not_load, _ = load_param_into_net(self.model, model_part, strict_load=strict_load)
        if self.optimizer is not None and "optimizer" in parts:
            self._load_optimizer(parts["optimizer"])
        scheds = self._schedulers()
        if scheds and "scheduler" in parts:
            saved = parts["scheduler"]
            saved_list = saved if isinstance(saved, list) else [saved]
            if len(saved_list) != len(scheds):
                raise ValueError(
                    f"The checkpoint holds {len(saved_list)} LR scheduler state(s) but "
                    f"{len(scheds)} scheduler(s) were given."
                )
            for sched, st in zip(scheds, saved_list, strict=True):
                sched.load_state_dict(st)
        if self.scaler is not None and "scaler" in parts:
            self.scaler.load_state_dict(parts["scaler"])
        if self.rng and "rng" in parts:
            restore_rng(parts["rng"])
        self.position = parts.get("loop")
        if "extra" in parts:
            self.extra = parts["extra"]
        return param_not_load, rest
