"""``mindspore.context`` for checkpoint code: ``set_context`` / ``get_context`` and the modes.

mindckpt runs no graphs and owns no device, so every setting here is **accepted and has no
effect** on what mindckpt does: saves and loads behave the same in ``GRAPH_MODE`` and
``PYNATIVE_MODE``, on any ``device_target``. What is kept is MindSpore's contract, so that
scripts written for MindSpore run unchanged:

* ``set_context(**kwargs)`` accepts exactly the keys MindSpore 2.10 accepts, checks their
  types and values as MindSpore does (same exception types and messages), and stores them;
  an unknown key raises ``ValueError``. Keys MindSpore has removed, or takes only through
  ``ascend_config``, raise as MindSpore does; device-specific keys set for another device are
  ignored with a warning, as MindSpore does.
* ``get_context(key)`` returns the stored value, or MindSpore's CPU default; an unknown key
  raises ``ValueError``.
* ``set_device(device_target, device_id=None)`` and ``get_current_device()`` store and report
  the device the same way (MindSpore's ``mindspore.set_device``).

The settings are process-wide, like MindSpore's, and guarded by a lock.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any

__all__ = [
    "GRAPH_MODE", "PYNATIVE_MODE", "STRICT", "COMPATIBLE", "LAX", "DEBUG", "RELEASE",
    "set_context", "get_context", "set_device", "get_current_device", "ParallelMode",
]  # fmt: skip

_logger = logging.getLogger("mindckpt")

GRAPH_MODE = 0
PYNATIVE_MODE = 1
STRICT = 0
COMPATIBLE = 1
LAX = 2
RELEASE = 0
DEBUG = 1

#: Every key ``get_context`` answers, with MindSpore 2.10's default on a CPU build
#: (tests/compat/golden/mindspore_compat.json records them from real MindSpore).
DEFAULTS: dict[str, Any] = {
    "aoe_config": {}, "aoe_job_type": "2", "aoe_tune_mode": "", "ascend_config": {},
    "atomic_clean_policy": "", "bias_add_comm_swap": False, "check_bprop": False,
    "compile_cache_path": "", "compute_communicate_fusion_level": 0, "conv_allow_hf32": "",
    "conv_allow_tf32": True, "conv_dgrad_algo": "normal", "conv_fprop_algo": "normal",
    "conv_wgrad_algo": "normal", "cur_step_num": 0, "dataset_broadcast_opt_level": 0,
    "debug_level": 0, "deterministic": "OFF", "device_id": 0, "device_target": "CPU",
    "disable_format_transform": False, "enable_allreduce_slice_to_reducescatter": False,
    "enable_begin_end_inline_opt": False, "enable_compile_cache": None,
    "enable_concat_eliminate_opt": False, "enable_flash_attention_load_balance": False,
    "enable_fused_cast_add_opt": False, "enable_grad_comm_opt": False,
    "enable_graph_kernel": False, "enable_interleave_parallel_branch": False,
    "enable_interleave_split_concat_branch": False, "enable_offloading_packed_experts": False,
    "enable_opt_shard_comm_opt": False, "enable_parallel_split": False,
    "enable_profiling": False, "enable_reduce_precision": True, "enable_task_opt": False,
    "env_config_path": "", "exec_order": "bfs", "ge_options": "", "gpu_config": {},
    "graph_kernel_flags": "", "hccl_watchdog": True, "host_scheduling_max_threshold": "",
    "infer_boost": "off", "inter_op_parallel_num": 0, "interleaved_layernorm_comm": False,
    "interleaved_matmul_comm": False, "jit_compile": "", "jit_config": {}, "jit_level": "",
    "jit_syntax_level": 2, "last_triggered_step": 0, "matmul_allow_hf32": "",
    "matmul_allow_tf32": False, "matmul_grad_comm_overlap": "", "max_call_depth": 1000,
    "max_device_memory": 1024.0, "memory_optimize_level": 0, "mempool_block_size": 1.0,
    "mode": PYNATIVE_MODE, "need_ckpt": False, "op_debug_option": "", "op_precision_mode": "",
    "op_timeout": 900, "pp_1f1b_overlap": "", "precision_mode": "", "print_file_path": "",
    "profiling_options": "training_trace", "pynative_synchronize": False,
    "recompute_allgather_overlap_fagrad": False, "recompute_comm_overlap": "",
    "runtime_num_threads": min(30, os.cpu_count() or 1), "save_checkpoint_steps": 0,
    "save_graphs": 0, "save_graphs_path": ".", "topo_order": "",
    "variable_memory_max_size": "0", "reserve_class_name_in_scope": True,
    "enable_debug_runtime": False, "enable_ge": False, "support_binary": False,
}  # fmt: skip

# MindSpore's @args_type_check on set_context.
_TYPES: dict[str, Any] = {
    "mode": int, "device_target": str, "device_id": int, "save_graphs": (bool, int),
    "save_graphs_path": str, "aoe_tune_mode": str, "aoe_config": dict,
    "enable_reduce_precision": bool, "variable_memory_max_size": str,
    "enable_auto_mixed_precision": bool, "inter_op_parallel_num": int,
    "enable_graph_kernel": bool, "reserve_class_name_in_scope": bool, "check_bprop": bool,
    "max_device_memory": str, "print_file_path": str, "max_call_depth": int,
    "env_config_path": str, "graph_kernel_flags": str, "save_compile_cache": bool,
    "runtime_num_threads": int, "load_compile_cache": bool, "pynative_synchronize": bool,
    "mempool_block_size": str, "disable_format_transform": bool, "op_timeout": int,
    "deterministic": str, "ascend_config": dict, "jit_syntax_level": int, "debug_level": int,
    "jit_enable_inplace_ops": bool, "gpu_config": dict, "jit_config": dict,
    "enable_compile_cache": bool,
}  # fmt: skip

# Keys valid only for some devices; set for another one they are ignored with a warning.
_DEVICE_KEYS = {
    "enable_reduce_precision": ["Ascend"], "print_file_path": ["Ascend"],
    "variable_memory_max_size": ["Ascend"], "max_device_memory": ["Ascend", "GPU"],
    "mempool_block_size": ["GPU", "Ascend"], "disable_format_transform": ["GPU"],
    "ascend_config": ["Ascend"], "gpu_config": ["GPU"],
}  # fmt: skip
_ASCEND_CONFIG_ONLY = (
    "precision_mode", "jit_compile", "atomic_clean_policy", "matmul_allow_hf32",
    "conv_allow_hf32", "op_precision_mode", "host_scheduling_max_threshold", "ge_options",
    "op_debug_option",
)
_REMOVED = {
    "exception_dump": ("2.6", "device_context.ascend.op_debug.aclinit_config()"),
    "precompile_only": ("2.10", "env MS_DEV_PRECOMPILE_ONLY"),
    "grad_for_scalar": ("2.10", "tensor derivative"),
}
_IGNORED = ("enable_sparse", "auto_tune_mode", "enable_auto_mixed_precision")
# Answered by get_context, but not settable (read-only properties in MindSpore).
_GET_ONLY = ("enable_debug_runtime", "enable_ge", "support_binary")
_DEVICES = ["CPU", "GPU", "Ascend", "Davinci"]
_GB = r"^[0-9]+(\.[0-9]+)?GB$"

_lock = threading.Lock()
_values: dict[str, Any] = {}


def _one_of(key: str, value: Any, options: list[Any]) -> None:
    if value not in options:
        raise ValueError(f"For 'context.set_context', the argument '{key}' must be one of "
                         f"{options}, but got {value}.")


def _gb(key: str, value: str) -> float:
    if re.match(_GB, value, re.ASCII) is None:
        raise ValueError(f"For 'context.set_context', the argument '{key}' should be in correct "
                         f"format! It must be a string ending with 'GB', such as \"5GB\" or "
                         f"\"3.5GB\", but got {value}.")
    number = float(value[:-2])
    if number == 0:
        raise ValueError(f"For 'context.set_context', the argument '{key}' should not be \"0GB\".")
    return number


def _checked(key: str, value: Any) -> Any:
    """MindSpore's value check for ``key``; returns the value get_context will report."""
    if key == "mode" and value not in (GRAPH_MODE, PYNATIVE_MODE):
        raise ValueError("For 'context.set_context', the argument 'mode' should be "
                         f"context.GRAPH_MODE (0) or context.PYNATIVE_MODE (1), but got {value}.")
    if key == "device_id" and not 0 <= value <= 4095:
        raise ValueError("For 'context.set_context', the argument 'device_id' must be in range "
                         f"[0, 4095], but got {value}.")
    if key == "max_call_depth" and value <= 0:
        raise ValueError("For 'context.set_context', the argument 'max_call_depth' must be "
                         f"greater than 0, but got {value}.")
    if key == "save_graphs":
        value = {True: 2, False: 0}.get(value, value) if isinstance(value, bool) else value
        if value > 3:
            raise ValueError(f"value for save_graphs should be 0-3 but got '{value}'")
    if key == "jit_syntax_level" and value not in (STRICT, COMPATIBLE, LAX):
        raise ValueError("For 'jit_syntax_level', the value should be context.STRICT or "
                         f"context.LAX, but got {value}.")
    if key == "debug_level" and value not in (RELEASE, DEBUG):
        raise ValueError("For 'debug_level', the value should be context.DEBUG or "
                         f"context.RELEASE, but got {value}.")
    if key == "deterministic":
        _one_of(key, value, ["ON", "OFF"])
    if key == "exec_order":
        _one_of(key, value, ["bfs", "dfs"])
    if key == "memory_optimize_level":
        _one_of(key, value, ["O0", "O1"])
        value = 0 if value == "O0" else 1
    if key in ("max_device_memory", "mempool_block_size"):
        value = _gb(key, value)
    if key in ("runtime_num_threads", "op_timeout", "inter_op_parallel_num") and value < 0:
        raise ValueError(f"For 'context.set_context', the argument '{key}' must be bigger than "
                         f"or equal to 0, but got {value}.")
    return value


def set_context(**kwargs: Any) -> None:
    """Store MindSpore context settings (checked as MindSpore does; no effect on mindckpt)."""
    for key, value in kwargs.items():
        want = _TYPES.get(key)
        if want is not None and not isinstance(value, want):
            raise TypeError(f"The parameter '{key}' must be {want}, but got {type(value)}")
    with _lock:
        device = kwargs.get("device_target", _values.get("device_target", "CPU"))
        if "device_target" in kwargs:
            _one_of("device_target", device, _DEVICES)
            device = "Ascend" if device == "Davinci" else device
        staged = {"device_target": device} if "device_target" in kwargs else {}
        for key, value in kwargs.items():
            if key == "device_target":
                continue
            if key in _REMOVED:
                version, instead = _REMOVED[key]
                raise ValueError(f"For 'context.set_context', the parameter '{key}' has been "
                                 f"removed since MindSpore {version} version. Please use the "
                                 f"{instead} instead.")
            if key in _IGNORED:
                _logger.warning("For 'context.set_context', '%s' parameter is deprecated; "
                                "ignored.", key)
                continue
            if key in _ASCEND_CONFIG_ONLY:
                raise ValueError(f"Please set '{key}' through parameter ascend_config")
            if key not in DEFAULTS or key in _GET_ONLY:
                raise ValueError(
                    f"For 'context.set_context', the keyword argument {key} is not recognized! "
                    "For detailed usage of 'set_context', please refer to the Mindspore "
                    "official website."
                )
            supported = _DEVICE_KEYS.get(key)
            if supported is not None and device not in supported:
                _logger.warning("For 'context.set_context', when set the argument '%s', the "
                                "argument 'device_target' only supports devices in '%s', but "
                                "got '%s', ignore it.", key, supported, device)
                continue
            staged[key] = _checked(key, value)
        _values.update(staged)


def get_context(attr_key: str) -> Any:
    """The value stored by ``set_context``, or MindSpore's default for ``attr_key``."""
    with _lock:
        if attr_key in _values:
            return _values[attr_key]
    if attr_key in DEFAULTS:
        return DEFAULTS[attr_key]
    raise ValueError(
        f"For 'context.get_context', the argument {attr_key} is not recognized! For detailed "
        "usage of 'get_context', please refer to the Mindspore official website."
    )


def set_device(device_target: str, device_id: int | None = None) -> None:
    """``mindspore.set_device``: record the device (mindckpt itself runs on the host)."""
    if device_target not in ("CPU", "GPU", "Ascend"):
        raise ValueError("The argument 'device_target' must be one of ['CPU', 'GPU', 'Ascend'], "
                         f"but got {device_target}.")
    kwargs: dict[str, Any] = {"device_target": device_target}
    if device_id is not None:
        kwargs["device_id"] = device_id
    set_context(**kwargs)


def get_current_device() -> Any:
    """``mindspore.get_current_device``: ``(device_target, device_id)`` as recorded."""
    return _DeviceInfo(get_context("device_target"), get_context("device_id"))


class _DeviceInfo(tuple):
    """``(device_target, device_id)``, printed as a plain tuple (MindSpore's DeviceInfo)."""

    def __new__(cls, device_target: str, device_id: int) -> _DeviceInfo:
        return super().__new__(cls, (device_target, device_id))

    @property
    def device_target(self) -> str:
        return self[0]

    @property
    def device_id(self) -> int:
        return self[1]


class ParallelMode:
    """MindSpore's parallel mode names (``context.ParallelMode.DATA_PARALLEL`` ...)."""

    STAND_ALONE = "stand_alone"
    DATA_PARALLEL = "data_parallel"
    HYBRID_PARALLEL = "hybrid_parallel"
    SEMI_AUTO_PARALLEL = "semi_auto_parallel"
    AUTO_PARALLEL = "auto_parallel"
    MODE_LIST = [STAND_ALONE, DATA_PARALLEL, HYBRID_PARALLEL, SEMI_AUTO_PARALLEL, AUTO_PARALLEL]
