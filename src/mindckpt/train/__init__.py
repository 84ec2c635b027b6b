"""``mindckpt.train``: MindSpore's ``mindspore.train`` checkpoint names.

``CheckpointConfig``, ``ModelCheckpoint``, ``Callback`` and ``RunContext`` live here;
``save_checkpoint``, ``load_checkpoint``, ``load_param_into_net`` and ``async_ckpt_thread_status``
are re-exported from the top-level package, as ``mindspore.train`` does.
"""

from __future__ import annotations

from mindckpt.async_writer import async_ckpt_thread_status
from mindckpt.train.callback import Callback, ModelCheckpoint, RunContext
from mindckpt.train.config import CheckpointConfig
from mindckpt.train.loop import CheckpointLoop
from mindckpt.train.resume import CheckpointPath, latest_checkpoint
from mindckpt.train.state import TrainState

__all__ = [
    "CheckpointConfig",
    "ModelCheckpoint",
    "Callback",
    "RunContext",
    "CheckpointLoop",
    "TrainState",
    "latest_checkpoint",
    "CheckpointPath",
    "save_checkpoint",
    "load_checkpoint",
    "load_param_into_net",
    "async_ckpt_thread_status",
]

_FROM_API = ("save_checkpoint", "load_checkpoint", "load_param_into_net")


def __getattr__(name: str):
    if name in _FROM_API:
        from mindckpt import _api

        return getattr(_api, name)
    raise AttributeError(f"module 'mindckpt.train' has no attribute {name!r}")
