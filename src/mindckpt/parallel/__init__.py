"""Sliced (distributed) checkpoints: layouts, MindSpore strategy files and the offline tools.

* :mod:`.layout`: the pure box model (``TensorLayout``: device matrix, tensor map incl. nested
  maps, optimizer shard, pipeline stages, uneven splits -> each rank's box, replica groups);
* :mod:`.strategy`: MindSpore's strategy files (protobuf and JSON), both directions;
* :mod:`.transform`, :mod:`.merge`, :mod:`.unified`: MindSpore's merge and reshard tools, by box
  arithmetic, with region reads and bounded memory.

The public names are MindSpore's (``mindspore.parallel.X`` -> ``mindckpt.parallel.X``).
"""

from ._plan import TransformError
from .layout import LayoutError, TensorLayout
from .merge import merge_sliced_parameter
from .strategy import (
    ParallelLayouts,
    build_searched_strategy,
    merge_pipeline_strategys,
    read_strategy,
    restore_group_info_list,
    write_strategy,
)
from .transform import (
    TransformProgress,
    convert_checkpoint_by_rank,
    convert_checkpoints,
    rank_list_for_convert,
    rank_list_for_transform,
    transform_checkpoint_by_rank,
    transform_checkpoints,
    transform_safetensors_by_rank,
    transform_safetensors_by_stage,
)
from .unified import (
    get_ckpt_path_with_strategy,
    load_distributed_checkpoint,
    load_segmented_checkpoints,
    unified_safetensors,
)

__all__ = [
    "TensorLayout",
    "LayoutError",
    "TransformError",
    "TransformProgress",
    "ParallelLayouts",
    "read_strategy",
    "write_strategy",
    "build_searched_strategy",
    "merge_pipeline_strategys",
    "restore_group_info_list",
    "merge_sliced_parameter",
    "rank_list_for_transform",
    "rank_list_for_convert",
    "transform_checkpoint_by_rank",
    "transform_checkpoints",
    "convert_checkpoint_by_rank",
    "convert_checkpoints",
    "transform_safetensors_by_rank",
    "transform_safetensors_by_stage",
    "unified_safetensors",
    "load_distributed_checkpoint",
    "load_segmented_checkpoints",
    "get_ckpt_path_with_strategy",
]
