"""mindckpt: MindSpore's checkpoint API and file formats, without MindSpore.

``import mindckpt as ms`` runs MindSpore checkpoint code unchanged: ``ms.save_checkpoint``,
``ms.load_checkpoint``, ``ms.load_param_into_net``, ``ms.Parameter``, ``ms.Tensor``, ``ms.nn.Cell``
and the dtypes, with files that MindSpore 2.10 reads and writes.
"""

from . import common, nn, parallel, train
from .async_writer import async_ckpt_thread_status
from ._api import (
    load_checkpoint,
    load_checkpoint_async,
    load_param_into_net,
    save_checkpoint,
)
from .convert import ckpt_to_safetensors, safetensors_to_ckpt
from .handle import open_checkpoint
from .parallel import (
    build_searched_strategy,
    convert_checkpoint_by_rank,
    convert_checkpoints,
    get_ckpt_path_with_strategy,
    load_distributed_checkpoint,
    load_segmented_checkpoints,
    merge_pipeline_strategys,
    merge_sliced_parameter,
    rank_list_for_transform,
    restore_group_info_list,
    transform_checkpoint_by_rank,
    transform_checkpoints,
    transform_safetensors_by_rank,
    transform_safetensors_by_stage,
    unified_safetensors,
)
from .errors import (
    AsyncSaveError,
    CheckpointError,
    CheckpointNotFoundError,
    ChecksumError,
    DecryptionError,
    DurabilityError,
    FormatError,
    StorageError,
)
from .train import Callback, CheckpointConfig, ModelCheckpoint, RunContext
from .tensor import (
    Parameter,
    Tensor,
    bfloat16,
    bool_,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    qint4x2,
    uint8,
    uint16,
    uint32,
    uint64,
)

__version__ = "0.1.0"

__all__ = [
    "common",
    "nn",
    "parallel",
    "build_searched_strategy",
    "convert_checkpoint_by_rank",
    "convert_checkpoints",
    "get_ckpt_path_with_strategy",
    "load_distributed_checkpoint",
    "load_segmented_checkpoints",
    "merge_pipeline_strategys",
    "merge_sliced_parameter",
    "rank_list_for_transform",
    "restore_group_info_list",
    "transform_checkpoint_by_rank",
    "transform_checkpoints",
    "transform_safetensors_by_rank",
    "transform_safetensors_by_stage",
    "unified_safetensors",
    "train",
    "CheckpointConfig",
    "ModelCheckpoint",
    "Callback",
    "RunContext",
    "async_ckpt_thread_status",
    "save_checkpoint",
    "load_checkpoint",
    "load_checkpoint_async",
    "load_param_into_net",
    "open_checkpoint",
    "ckpt_to_safetensors",
    "safetensors_to_ckpt",
    "Parameter",
    "Tensor",
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool_",
    "qint4x2",
    "CheckpointError",
    "FormatError",
    "ChecksumError",
    "DecryptionError",
    "AsyncSaveError",
    "CheckpointNotFoundError",
    "StorageError",
    "DurabilityError",
]
