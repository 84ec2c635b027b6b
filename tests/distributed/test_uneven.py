"""Uneven shards of dimension 0 (what FSDP2 and DTensor make when the mesh does not divide a
dimension: ``torch.chunk`` pieces, the last ones short or empty) are MindSpore's uneven split
(``param_split_shape``): exact both ways, saved integrated and sliced, resharded on load."""

from __future__ import annotations

import numpy as np
import pytest

import mindckpt
from _harness import full_tensor, np_of, run_ranks
from mindckpt.parallel.dtensor import chunk_sizes, layout_from_placements, placements_from_layout
from mindckpt.parallel.layout import LayoutError

torch = pytest.importorskip("torch")
from torch.distributed.tensor import Replicate, Shard  # noqa: E402

# name, full shape, placements per mesh kind (1-D mesh, 2-D mesh)
UNEVEN = [
    ("vocab", (10, 4), [Shard(0)], [Shard(0), Shard(0)]),  # 3,3,3,1 / nested 3,2,3,2
    ("tiny", (2, 3), [Shard(0)], [Replicate(), Shard(0)]),  # 1,1,0,0: empty shards
    ("cols", (7, 12), [Shard(1)], [Shard(0), Shard(1)]),  # uneven dim 0 beside an even dim 1
    ("bias", (5,), [Replicate()], [Shard(0), Replicate()]),
]


def test_chunk_sizes_are_torch_chunk():
    for n in range(0, 12):
        for k in (1, 2, 3, 4):
            pieces = [len(c) for c in torch.arange(n).chunk(k)] if n else []
            want = pieces + [0] * (k - len(pieces))
            assert chunk_sizes(n, [k]) == want, (n, k)
    assert chunk_sizes(10, [2, 2]) == [3, 2, 3, 2]


def test_uneven_dim0_is_param_split_shape_and_back():
    lay = layout_from_placements((4,), [Shard(0)], (10, 4), name="v")
    assert lay.param_split_shape == (3, 3, 3, 1)
    assert [lay.box(r) for r in range(4)] == [((0, 3), (0, 4)), ((3, 6), (0, 4)),
                                            ((6, 9), (0, 4)), ((9, 10), (0, 4))]
    assert placements_from_layout(lay) == ((4,), [Shard(0)])
    nested = layout_from_placements((2, 2), [Shard(0), Shard(0)], (10, 4), name="n")
    assert nested.dim0_sizes == (3, 2, 3, 2)
    assert placements_from_layout(nested) == ((2, 2), [Shard(0), Shard(0)])
    both = layout_from_placements((2, 2), [Shard(0), Shard(1)], (7, 8), name="c")
    assert both.param_split_shape == (4, 4, 3, 3)  # one per slice, row-major
    assert both.box(3) == ((4, 7), (4, 8))


def test_uneven_other_dims_and_foreign_splits_refused():
    with pytest.raises(LayoutError, match="dimension 1 .* split unevenly"):
        layout_from_placements((4,), [Shard(1)], (4, 6), name="p")
    from mindckpt.parallel.layout import TensorLayout

    odd = TensorLayout((4,), (0, -1), (10, 4), param_split_shape=(1, 3, 3, 3), name="o")
    with pytest.raises(LayoutError, match="not the one DTensor makes"):
        placements_from_layout(odd)


def _mesh(world, kind):
    from torch.distributed.device_mesh import init_device_mesh

    if kind == "1d":
        return init_device_mesh("cpu", (world,), mesh_dim_names=("x",))
    return init_device_mesh("cpu", (2, world // 2), mesh_dim_names=("dp", "tp"))


def _state(mesh, kind, zeros=False):
    from torch.distributed.tensor import distribute_tensor

    out = {}
    for name, shape, pl1, pl2 in UNEVEN:
        t = full_tensor(name, shape)
        out[name] = distribute_tensor(torch.zeros_like(t) if zeros else t, mesh,
                                      pl1 if kind == "1d" else pl2)
    return out


def _save(rank, world, kind, path, kwargs):
    from mindckpt.parallel.dtensor import layout_from_dtensor
    from mindckpt.parallel.save import save_distributed

    mesh = _mesh(world, kind)
    sd = _state(mesh, kind)
    for name, dt in sd.items():  # the layout's box is exactly DTensor's local shard
        box = layout_from_dtensor(dt, name).box(rank)
        want = np_of(full_tensor(name, tuple(dt.shape)))[tuple(slice(a, b) for a, b in box)]
        np.testing.assert_array_equal(np_of(dt.to_local()), want, err_msg=name)
    save_distributed(sd, path(rank) if callable(path) else path, **kwargs)
    return True


def _load(rank, world, kind, path):
    from mindckpt.parallel.load import load_distributed

    target = _state(_mesh(world, kind), kind, zeros=True)
    res = load_distributed(path, target)
    return {"missing": res.param_not_load,
            "values": {k: np_of(v.full_tensor()) for k, v in target.items()},
            "payload": res.payload_bytes, "shard": res.shard_bytes}


def _check(values):
    for name, shape, _a, _b in UNEVEN:
        np.testing.assert_array_equal(values[name], np_of(full_tensor(name, shape)),
                                      err_msg=name)


@pytest.mark.parametrize("m,mkind,n,nkind", [(4, "1d", 3, "1d"), (4, "2d", 2, "1d"),
                                             (3, "1d", 4, "2d")])
def test_uneven_sliced_save_reshards_on_load(tmp_path, m, mkind, n, nkind):
    d = str(tmp_path / "ck")
    run_ranks(_save, m, tmp_path, mkind, d, {"integrated_save": False,
                                             "format": "safetensors"})
    for o in run_ranks(_load, n, tmp_path, nkind, d):
        assert o["missing"] == []
        _check(o["values"])
        assert o["payload"] == o["shard"]  # each rank reads only its own (uneven) shard


def test_uneven_integrated_save_is_byte_identical_and_loads_on_other_world(tmp_path):
    path = lambda r: str(tmp_path / f"rank_{r}" / "net")  # noqa: E731
    run_ranks(_save, 4, tmp_path, "1d", path, {"format": "ckpt", "crc_check": True})
    full = {name: full_tensor(name, shape) for name, shape, _a, _b in UNEVEN}
    mindckpt.save_checkpoint(full, str(tmp_path / "ref"), crc_check=True)
    expect = (tmp_path / "ref.ckpt").read_bytes()
    for r in range(4):
        assert (tmp_path / f"rank_{r}" / "net.ckpt").read_bytes() == expect
    for o in run_ranks(_load, 3, tmp_path, "1d", str(tmp_path / "rank_0" / "net.ckpt")):
        _check(o["values"])


@pytest.mark.mindspore
def test_mindspore_merges_uneven_slices_with_our_strategy_file(tmp_path):
    """MindSpore's merge_sliced_parameter rebuilds the full tensors from our per-rank files and
    strategy file.  (Its transform_checkpoints cannot transform uneven splits at all: it fails
    reshaping a 3-row slice into the even slice shape; mindckpt's tools do transform them.)"""
    import ms_oracle as mso

    d = tmp_path / "sliced"
    run_ranks(_save, 4, tmp_path, "1d", str(d), {"integrated_save": False, "format": "ckpt"})
    mso.require_mindspore()
    parts = [mindckpt.load_checkpoint(str(d / f"rank_{r}" / "sliced.ckpt")) for r in range(4)]
    for name in ("vocab",):
        slices = [mso.entry(name, p[name].asnumpy()) for p in parts]
        merged = mso.to_numpy(mso.ms_merge_sliced(slices, str(d / "strategy.ckpt")))
        np.testing.assert_array_equal(merged, np_of(full_tensor(name, (10, 4))))
    out = tmp_path / "ours"
    from mindckpt.parallel import transform_checkpoints

    transform_checkpoints(str(d), str(out), "m", str(d / "strategy.ckpt"), None)
    got = {e["name"]: mso.to_numpy(e) for e in mso.load(str(out / "rank_0" / "m0.ckpt"))}
    _check(got)
