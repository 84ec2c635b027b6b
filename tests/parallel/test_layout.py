"""The layout model: boxes, replica groups, optimizer shard, pipeline stages, uneven splits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mindckpt.parallel.layout import (
    LayoutError,
    TensorLayout,
    box_shape,
    full_box,
    intersect,
    relative,
)


def chunk_reference(full: np.ndarray, strategy: list[int]) -> list[np.ndarray]:
    """MindSpore's _chunk_tensor_by_strategy: slices in row-major slice-index order."""
    out = [full]
    for axis, n in enumerate(strategy):
        out = [piece for arr in out for piece in np.split(arr, n, axis)]
    return out


def reference_slice(full, dev_matrix, tensor_map, rank):
    """The slice rank ``rank`` holds, computed the way MindSpore's _load_tensor does."""
    n = len(dev_matrix)
    coord = np.unravel_index(rank, dev_matrix)
    strategy, index = [], []
    for e in tensor_map:
        axes = [k for k in (e if isinstance(e, tuple) else (e,)) if k != -1]
        size, idx = 1, 0
        for k in axes:
            idx = idx * dev_matrix[n - 1 - k] + int(coord[n - 1 - k])
            size *= dev_matrix[n - 1 - k]
        strategy.append(size)
        index.append(idx)
    flat = int(np.ravel_multi_index(index, strategy)) if strategy else 0
    return chunk_reference(full, strategy)[flat]


@st.composite
def layouts(draw, nested=True):
    ndev = draw(st.integers(1, 4))
    dev = [draw(st.sampled_from([1, 2, 3, 4])) for _ in range(ndev)]
    ndim = draw(st.integers(0, 3))
    free = list(range(ndev))
    tmap = []
    for _ in range(ndim):
        choice = draw(st.integers(0, 2 if nested else 1))
        if choice == 0 or not free:
            tmap.append(-1)
        elif choice == 1:
            k = draw(st.sampled_from(free))
            free.remove(k)
            tmap.append(k)
        else:
            ks = draw(st.lists(st.sampled_from(free), min_size=1, max_size=len(free), unique=True))
            for k in ks:
                free.remove(k)
            tmap.append(tuple(ks) if len(ks) > 1 else ks[0])
    probe = TensorLayout(dev, tmap, [0] * ndim)
    shape = [s * draw(st.integers(1, 3)) for s in probe.tensor_strategy]
    return TensorLayout(dev, tmap, shape)


@settings(max_examples=150, deadline=None)
@given(layouts())
def test_boxes_match_mindspore_slicing(layout):
    full = np.arange(math.prod(layout.full_shape), dtype=np.int64).reshape(layout.full_shape)
    for r in range(layout.device_num):
        box = layout.box(r)
        want = reference_slice(full, list(layout.dev_matrix), list(layout.tensor_map), r)
        np.testing.assert_array_equal(full[tuple(slice(a, b) for a, b in box)], want)


@settings(max_examples=150, deadline=None)
@given(layouts(), st.sampled_from([0, -1, 2]))
def test_distinct_boxes_tile_the_tensor_once(layout, opt):
    if opt and layout.ndim and layout._repeated_axes:
        group = len(layout.replica_groups_mp[0])
        size = group if opt == -1 else opt
        if group % size == 0 and layout.mp_dim0_sizes[0] % size == 0:
            layout = TensorLayout(layout.dev_matrix, layout.tensor_map, layout.full_shape,
                                  opt_shard_size=opt, opt_shard_step=layout.optimizer_step_for())
    cover = np.zeros(layout.full_shape, dtype=np.int64)
    for box, ranks in layout.distinct_boxes():
        cover[tuple(slice(a, b) for a, b in box)] += 1
        assert all(layout.box(r) == box for r in ranks)
    assert (cover == 1).all()
    groups = layout.replica_groups()
    assert sorted(r for g in groups for r in g) == list(range(layout.device_num))
    if layout.opt_active:
        # every replica group of the model-parallel split is cut into opt_size pieces
        assert len(groups) == len(layout.replica_groups_mp) * layout.opt_size


def test_worked_example_from_the_spec():
    lay = TensorLayout([2, 2, 2], [2, 0], [4, 4])
    assert lay.box(0) == lay.box(2) == ((0, 2), (0, 2))
    assert lay.box(1) == lay.box(3) == ((0, 2), (2, 4))
    assert lay.box(4) == ((2, 4), (0, 2))
    assert lay.replica_groups() == [(0, 2), (1, 3), (4, 6), (5, 7)]


def test_row_major_coordinates():
    lay = TensorLayout([2, 4], [1, 0], [4, 8])
    assert lay.coord(5) == (1, 1)
    assert lay.box(5) == ((2, 4), (2, 4))


def test_nested_map_outer_axis_first():
    lay = TensorLayout([2, 2], [(1, 0), -1], [8, 3])
    assert [lay.box(r)[0] for r in range(4)] == [(0, 2), (2, 4), (4, 6), (6, 8)]
    rev = TensorLayout([2, 2], [(0, 1), -1], [8, 3])
    assert [rev.box(r)[0] for r in range(4)] == [(0, 2), (4, 6), (2, 4), (6, 8)]


def test_optimizer_shard_consecutive_replicas_take_pieces_in_order():
    # dp4 x mp2, w split on dim 1 by mp, opt shard 2 over the dp replicas (stride 2)
    lay = TensorLayout([4, 2], [-1, 0], [8, 4], opt_shard_size=2, opt_shard_step=2)
    assert lay.replica_groups_mp[0] == (0, 2, 4, 6)
    assert lay.box(0) == ((0, 4), (0, 2))
    assert lay.box(2) == ((4, 8), (0, 2))
    assert lay.box(4) == ((0, 4), (0, 2))
    assert lay.box(1) == ((0, 4), (2, 4))
    assert lay.replica_groups() == [(0, 4), (1, 5), (2, 6), (3, 7)]
    full = TensorLayout([4, 2], [-1, 0], [8, 4], opt_shard_size=-1, opt_shard_step=2)
    assert [full.box(r)[0] for r in (0, 2, 4, 6)] == [(0, 2), (2, 4), (4, 6), (6, 8)]


def test_optimizer_shard_step_is_checked_like_mindspore():
    with pytest.raises(LayoutError, match="opt_shard_step"):
        TensorLayout([4, 2], [-1, 0], [8, 4], opt_shard_size=2, opt_shard_step=1)
    with pytest.raises(LayoutError, match="divide"):
        TensorLayout([4, 2], [-1, 0], [8, 4], opt_shard_size=3, opt_shard_step=2)
    with pytest.raises(LayoutError, match="divisible"):
        TensorLayout([4, 2], [-1, 0], [2, 4], opt_shard_size=4, opt_shard_step=2)
    off = TensorLayout([4, 2], [-1, 0], [8, 4], opt_shard_size=2, opt_shard_step=0)
    assert not off.opt_active and off.box(0) == ((0, 8), (0, 2))


def test_pipeline_stages_offset_global_ranks():
    lay = TensorLayout([2], [0, -1], [4, 2], stages=[1])
    assert lay.box(0) is None and lay.box(1) is None
    assert lay.box(2) == ((0, 2), (0, 2)) and lay.box(3) == ((2, 4), (0, 2))
    assert lay.ranks() == [2, 3]
    assert lay.replica_groups() == [(2,), (3,)]


def test_uneven_split_dim0_sizes():
    lay = TensorLayout([3], [0, -1], [7, 2], param_split_shape=[3, 2, 2])
    assert [lay.box(r)[0] for r in range(3)] == [(0, 3), (3, 5), (5, 7)]
    with pytest.raises(LayoutError, match="add up"):
        TensorLayout([3], [0, -1], [8, 2], param_split_shape=[3, 2, 2])
    with pytest.raises(LayoutError, match="one per slice"):
        TensorLayout([3], [0, -1], [7, 2], param_split_shape=[5, 2])


def test_from_local_shape_inverts_local_shape():
    lay = TensorLayout.from_local_shape([4, 2], [-1, 0], [2, 2], opt_shard_size=2,
                                        opt_shard_step=2)
    assert lay.full_shape == (4, 4)
    assert lay.local_shape() == (2, 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(dev_matrix=[2], tensor_map=[1], full_shape=[4]), "names no device axis"),
    (dict(dev_matrix=[2, 2], tensor_map=[0, 0], full_shape=[4, 4]), "splits two"),
    (dict(dev_matrix=[2], tensor_map=[0], full_shape=[3]), "not divisible"),
    (dict(dev_matrix=[2], tensor_map=[0, -1], full_shape=[4]), "one entry per dimension"),
    (dict(dev_matrix=[0], tensor_map=[-1], full_shape=[4]), "positive"),
    (dict(dev_matrix=[2, 2], tensor_map=[(1, -1)], full_shape=[4]), "cannot contain -1"),
    (dict(dev_matrix=[2], tensor_map=[-1], full_shape=[4], field_size=2), "field"),
])
def test_invalid_layouts_name_the_problem(kwargs, match):
    with pytest.raises(LayoutError, match=match):
        TensorLayout(name="w", **kwargs)


def test_local_rank_outside_the_stage():
    with pytest.raises(LayoutError, match="outside"):
        TensorLayout([2], [0], [4]).local_box(2)


def test_box_helpers():
    a = ((0, 4), (2, 6))
    b = ((2, 8), (0, 3))
    assert intersect(a, b) == ((2, 4), (2, 3))
    assert intersect(a, ((4, 5), (0, 9))) is None
    assert relative(((2, 4), (2, 3)), a) == (slice(2, 4), slice(0, 1))
    assert box_shape(full_box([3, 5])) == (3, 5)
