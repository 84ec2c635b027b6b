"""``merge_sliced_parameter``: one parameter's per-device slices back into the full tensor.

MindSpore's name, arguments, checks and results, with three differences: every entry of a
nested tensor map is used (MindSpore reads only the first, so nested layouts merge wrongly);
bfloat16 slices stay bfloat16 (MindSpore returns float32); when the strategy has an optimizer
shard, the slices are taken as what each rank saved (cut further along dim 0) and merged
right (MindSpore ignores the shard and returns a tensor of the wrong shape).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import tensor as T
from .layout import LayoutError, TensorLayout, box_shape
from .strategy import ParallelLayouts

__all__ = ["merge_sliced_parameter"]


def _array(p: Any) -> np.ndarray:
    return T.to_numpy(p)


def merge_sliced_parameter(sliced_parameters: list[Any],
                           strategy: Mapping[str, ParallelLayouts] | None = None) -> Any:
    """Merge ``sliced_parameters`` (one Parameter per device, in rank order) into a Parameter.

    Without ``strategy`` the slices are concatenated along axis 0 (MindSpore's rule; right only
    for a plain dim-0 split).  With it (``build_searched_strategy``'s dict), each slice is put
    in its place, replicas once, uneven ``param_split_shape`` splits honoured.

    Raises:
        TypeError: ``sliced_parameters`` is not a list of Parameters or ``strategy`` not a dict.
        ValueError: the slices disagree in name or shape, or do not fit the strategy.
        KeyError: the parameter is not in ``strategy``.
    """
    if not isinstance(sliced_parameters, list):
        raise TypeError("For 'merge_sliced_parameter', the argument 'sliced_parameters' should "
                        f"be list, but got {type(sliced_parameters)}.")
    if not sliced_parameters:
        raise ValueError("For 'merge_sliced_parameter', the argument 'sliced_parameters' should "
                         "not be empty.")
    if strategy and not isinstance(strategy, dict):
        raise TypeError("For 'merge_sliced_parameter', the argument 'strategy' should be dict, "
                        f"but got {type(strategy)}.")
    first = sliced_parameters[0]
    if not isinstance(first, T.Parameter):
        raise TypeError("For 'merge_sliced_parameter', the element in 'sliced_parameters' should "
                        f"be 'Parameter', but got {type(first)} at index 0.")
    name = first.name
    shape0 = tuple(first.shape)
    for i, p in enumerate(sliced_parameters):
        if not isinstance(p, T.Parameter):
            raise TypeError("For 'merge_sliced_parameter', the element in 'sliced_parameters' "
                            f"should be 'Parameter', but got {type(p)} at index {i}.")
        shape = tuple(p.shape)
        if p.name != name or len(shape) != len(shape0) or shape[1:] != shape0[1:]:
            raise ValueError(
                "For 'merge_sliced_parameter', please make sure that the elements in "
                "'slice_parameters' have the same name, dimension length and shape except 0 "
                f"axis. The name, dimension length, shape except 0 axis should be {name}, "
                f"{len(shape0)}, {shape0[1:]}, but got name: {p.name}, dimension length: "
                f"{len(shape)}, shape except 0 axis: {shape[1:]} at index {i}.")
    arrays = [_array(p) for p in sliced_parameters]
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) > 1:
        raise ValueError(f"For 'merge_sliced_parameter', the slices of '{name}' have different "
                         f"dtypes {sorted(map(str, dtypes))}; cast them to one dtype first.")
    if not strategy:
        merged = np.concatenate(arrays) if shape0 else np.stack(arrays)
    else:
        if name not in strategy:
            raise KeyError(f"For 'merge_sliced_parameter', the parameter name {name} should be a "
                           "key in the 'strategy'. Please check 'sliced_parameter' and "
                           "'strategy'.")
        merged = _merge_with(arrays, name, strategy[name])
    dtype = first.dtype if isinstance(getattr(first, "dtype", None), T.Type) else None
    return T.Parameter(T.Tensor(merged, dtype=dtype), name, first.requires_grad,
                       first.layerwise_parallel)


def _merge_with(arrays: list[np.ndarray], name: str, lay: ParallelLayouts) -> np.ndarray:
    try:
        dev = list(lay.dev_matrix[0].dim)
        tmap = lay.map_entries() if isinstance(lay, ParallelLayouts) else \
            list(lay.tensor_map[0].dim)
        split = list(lay.param_split_shape[0].dim) if lay.param_split_shape else []
        field = int(lay.field)
        step, size = int(lay.opt_weight_shard_step), int(lay.opt_weight_shard_size)
    except (AttributeError, IndexError, TypeError) as e:
        raise ValueError(f"{e}. For 'merge_sliced_parameter', please make sure that 'strategy' "
                         "is correct.") from None
    if field > 0:
        raise NotImplementedError(f"For 'merge_sliced_parameter', '{name}' uses field slicing "
                                  f"(field={field}), which mindckpt does not support.")
    count = math.prod(dev)
    if len(arrays) != count:
        raise ValueError("For 'merge_sliced_parameter', the length of 'sliced_parameters' should "
                         f"be equal to device_count. The length of 'sliced_parameters' is "
                         f"{len(arrays)}, but device_count is {count}.")
    if not split and len({a.shape for a in arrays}) > 1:
        raise ValueError("For 'merge_sliced_parameter', the shape of every parameter in "
                         "'sliced_parameters' should be the same when slice manner is even.")
    try:
        layout = _layout_for(dev, tmap, split, step, size, arrays, name)
    except LayoutError as e:
        raise ValueError(f"For 'merge_sliced_parameter', the slices of '{name}' do not fit the "
                         f"strategy: {e}") from None
    out = np.empty(layout.full_shape, dtype=arrays[0].dtype)
    for box, ranks in layout.distinct_boxes():
        a = arrays[ranks[0]]
        if tuple(a.shape) != box_shape(box):
            raise ValueError(f"For 'merge_sliced_parameter', the slice {ranks[0]} of '{name}' "
                             f"has shape {list(a.shape)}, expected {list(box_shape(box))}.")
        out[tuple(slice(x, y) for x, y in box)] = a
    return out


def _layout_for(dev: list[int], tmap: list[Any], split: list[int], step: int, size: int,
                arrays: list[np.ndarray], name: str) -> TensorLayout:
    local = arrays[0].shape
    if split:
        probe = TensorLayout(tuple(dev), tuple(tmap), (0,) * len(tmap), name=name)
        strat = probe.tensor_strategy
        full = [n * s for n, s in zip(local, strat, strict=True)]
        inner = math.prod(strat[1:])
        full[0] = sum(split[i * inner] for i in range(strat[0])) if len(split) == math.prod(
            strat) else -1
        if full[0] < 0:
            raise LayoutError(f"the param_split_shape length in 'strategy' should be "
                              f"{math.prod(strat)}, but got {len(split)}")
        lay = TensorLayout(tuple(dev), tuple(tmap), tuple(full), stages=(0,),
                           param_split_shape=tuple(split), name=name)
        for r, a in enumerate(arrays):
            want = box_shape(lay.local_box(r))
            if tuple(a.shape) != want:
                raise LayoutError(f"the slice {r} should be {want[0]} in 0 axis, but got "
                                  f"{a.shape[0]}")
        return lay
    return TensorLayout.from_local_shape(dev, tmap, local, opt_shard_size=size,
                                         opt_shard_step=step, name=name)
