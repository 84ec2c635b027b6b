"""DTensor placements <-> MindSpore layouts: exact both ways (checked against DTensor's own
slicing on 4 and 8 gloo ranks), and the placements mindckpt refuses."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from _harness import full_tensor, np_of, run_ranks
from mindckpt.parallel.dtensor import layout_from_placements, placements_from_layout
from mindckpt.parallel.layout import LayoutError, TensorLayout

torch = pytest.importorskip("torch")
from torch.distributed.tensor import Replicate, Shard  # noqa: E402
from torch.distributed.tensor.placement_types import Partial, _StridedShard  # noqa: E402


@pytest.mark.parametrize("mesh,pl,shape,tmap", [
    ((4,), [Shard(0)], (8, 4), (0, -1)),
    ((4,), [Shard(1)], (8, 4), (-1, 0)),
    ((4,), [Replicate()], (8, 4), (-1, -1)),
    ((2, 2), [Replicate(), Shard(1)], (8, 4), (-1, 0)),  # spec's [ran] example
    ((2, 2), [Shard(0), Shard(0)], (8, 4), ((1, 0), -1)),  # nested, mesh dim 0 outermost
    ((2, 4), [Shard(1), Shard(0)], (8, 8), (0, 1)),
    ((2, 2, 2), [Shard(0), Replicate(), Shard(1)], (4, 4), (2, 0)),
])
def test_placements_to_layout_and_back(mesh, pl, shape, tmap):
    lay = layout_from_placements(mesh, pl, shape, name="p")
    assert lay.dev_matrix == mesh and lay.tensor_map == tmap
    back_mesh, back = placements_from_layout(lay)
    assert back_mesh == mesh and back == pl


@pytest.mark.parametrize("pl,match", [
    ([Partial()], "partial sums"),
    ([_StridedShard(0, split_factor=2)], "optimizer shard"),
    ([Shard(1)], "dimension 1 .* split unevenly"),  # dim 0 may be uneven (test_uneven.py)
])
def test_refused_placements(pl, match):
    with pytest.raises(LayoutError, match=match):
        layout_from_placements((4,), pl, (6, 6), name="p")


def test_layouts_dtensor_cannot_express():
    inner_first = TensorLayout((2, 2), ((0, 1), -1), (8, 4), name="x")
    with pytest.raises(LayoutError, match="mesh order"):
        placements_from_layout(inner_first)
    opt = TensorLayout((4,), (-1,), (8,), opt_shard_size=2, opt_shard_step=1, name="y")
    with pytest.raises(LayoutError, match="_StridedShard"):
        placements_from_layout(opt)


_SPECS = ["R", "S0", "S1"]


def _check_all(rank, world, mesh_shape):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import distribute_tensor

    from mindckpt.parallel.dtensor import layout_from_dtensor, to_dtensor

    names = ("x",) if len(mesh_shape) == 1 else ("dp", "tp")
    mesh = init_device_mesh("cpu", mesh_shape, mesh_dim_names=names)
    full = full_tensor("t", (8, 8))
    checked = 0
    for spec in itertools.product(_SPECS, repeat=len(mesh_shape)):
        pl = [Replicate() if s == "R" else Shard(int(s[1])) for s in spec]
        dt = distribute_tensor(full, mesh, pl)
        lay = layout_from_dtensor(dt, "t")
        box = lay.box(rank)
        np.testing.assert_array_equal(np_of(dt.to_local()),
                                      np_of(full)[tuple(slice(a, b) for a, b in box)])
        again = to_dtensor(dt.to_local(), lay, mesh)
        assert list(again.placements) == pl
        checked += 1
    if len(mesh_shape) == 2:  # a sub-mesh maps into the root's device matrix
        sub = mesh["tp"]
        dt = distribute_tensor(full, sub, [Shard(1)])
        lay = layout_from_dtensor(dt, "t")
        assert lay.dev_matrix == mesh_shape and lay.tensor_map == (-1, 0)
        np.testing.assert_array_equal(np_of(dt.to_local()), np_of(full)[
            tuple(slice(a, b) for a, b in lay.box(rank))])
    return checked


@pytest.mark.parametrize("world,mesh_shape", [(4, (4,)), (4, (2, 2)), (8, (2, 4))])
def test_layout_boxes_equal_dtensor_local_shards(tmp_path, world, mesh_shape):
    out = run_ranks(_check_all, world, tmp_path, mesh_shape)
    assert out == [3 ** len(mesh_shape)] * world
