"""``mindspore.train.serialization``: the checkpoint names MindSpore's module exports, re-exported.

``from mindckpt.train.serialization import save_checkpoint, load_checkpoint`` works as
MindSpore's does; every name here is the object of the same name elsewhere in mindckpt (no
second implementation). MindSpore's MindIR names (``export``, ``load``, ``load_mindir`` ...)
and ``load_distributed_checkpoint``/``merge_sliced_parameter`` are not here.
"""

from __future__ import annotations

from .. import context
from .._api import (
    ParamDictFuture,
    load_checkpoint,
    load_checkpoint_async,
    load_param_into_net,
    save_checkpoint,
)
from ..async_writer import async_ckpt_thread_status
from ..common import dtype as mstype
from ..convert import ckpt_to_safetensors, safetensors_to_ckpt
from ..parallel.strategy import build_searched_strategy, restore_group_info_list
from ..tensor import Parameter, Tensor

__all__ = [
    "save_checkpoint", "load_checkpoint", "load_checkpoint_async", "load_param_into_net",
    "ckpt_to_safetensors", "safetensors_to_ckpt", "async_ckpt_thread_status",
    "ParamDictFuture", "build_searched_strategy", "restore_group_info_list",
    "Parameter", "Tensor", "mstype", "context",
]  # fmt: skip
