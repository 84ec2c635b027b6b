"""Distributed save and load on gloo (fork, file:// rendezvous): every mode, DTensor 1-D and 2-D
meshes, byte identity of integrated saves, MindSpore's directory layout, reshard M -> N."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import mindckpt
from _harness import np_of, run_ranks
from _zoo import dtensor_state, full_state, make_mesh, zoo
from mindckpt.parallel.strategy import load_layout_map

torch = pytest.importorskip("torch")


def _saver(rank, world, path, kind, kwargs):
    from mindckpt.parallel.save import save_distributed

    mesh = make_mesh(world, kind)
    sd = dtensor_state(mesh, zoo(kind))
    res = save_distributed(sd, path(rank) if callable(path) else path, **kwargs)
    return {"files": res.files, "bytes": res.bytes_written, "mode": res.mode,
            "committed": res.committed}


def _loader(rank, world, path, kind, names_from, layouts_only=False):
    from mindckpt.parallel.load import load_distributed

    mesh = make_mesh(world, kind)
    entries = zoo(kind, names_from)
    target = dtensor_state(mesh, entries, zeros=True)
    res = load_distributed(path, target)
    out = {"not_loaded": res.param_not_load, "ckpt_not_load": res.ckpt_not_load,
           "bytes_read": res.bytes_read, "payload": res.payload_bytes,
           "shard": res.shard_bytes, "values": {}}
    for name, v in target.items():
        full = v.full_tensor() if hasattr(v, "full_tensor") else v
        out["values"][name] = np_of(full)
    return out


def _check_full(values, kind_of_names):
    want = full_state(zoo(kind_of_names))
    for name, t in want.items():
        np.testing.assert_array_equal(values[name], np_of(t), err_msg=name)


# ----------------------------------------------------------------- integrated


@pytest.mark.parametrize("world,kind,fmt,crc", [
    (2, "1d", "ckpt", False), (4, "2d", "safetensors", True), (4, "1d", "ckpt", True),
    (2, "2d", "safetensors", False)])
def test_integrated_every_rank_writes_byte_identical(tmp_path, world, kind, fmt, crc):
    path = lambda r: str(tmp_path / f"rank_{r}" / "net")  # noqa: E731
    out = run_ranks(_saver, world, tmp_path, path, kind, {"format": fmt, "crc_check": crc})
    ref = tmp_path / "ref"
    mindckpt.save_checkpoint(full_state(zoo(kind)), str(ref), format=fmt, crc_check=crc)
    expect = (tmp_path / f"ref.{fmt}").read_bytes()
    for r in range(world):
        assert out[r]["files"] == [str(tmp_path / f"rank_{r}" / f"net.{fmt}")]
        assert (tmp_path / f"rank_{r}" / f"net.{fmt}").read_bytes() == expect


@pytest.mark.parametrize("world,kind,writer", [(4, "2d", 0), (4, "1d", 3), (2, "1d", 1)])
def test_integrated_one_writer(tmp_path, world, kind, writer):
    path = str(tmp_path / "net.safetensors")
    out = run_ranks(_saver, world, tmp_path, path, kind,
                    {"format": "safetensors", "writer_rank": writer})
    assert [bool(o["files"]) for o in out] == [r == writer for r in range(world)]
    mindckpt.save_checkpoint(full_state(zoo(kind)), str(tmp_path / "ref"), format="safetensors")
    assert (tmp_path / "net.safetensors").read_bytes() == \
        (tmp_path / "ref.safetensors").read_bytes()


def test_integrated_encrypted_loads(tmp_path):
    key = b"0123456789abcdef"
    run_ranks(_saver, 2, tmp_path, str(tmp_path / "enc"), "2d",
              {"writer_rank": 0, "enc_key": key})
    got = mindckpt.load_checkpoint(str(tmp_path / "enc.ckpt"), dec_key=key)
    for name, t in full_state(zoo("2d")).items():
        np.testing.assert_array_equal(np.asarray(got[name].asnumpy()), np_of(t))


# ----------------------------------------------------------------- sliced and dedup


def _check_dir(tmp_path, d, world, fmt):
    names = sorted(os.listdir(d))
    assert names == sorted(["mindckpt.commit", "mindckpt.index.json", "strategy.ckpt",
                            *[f"rank_{r}" for r in range(world)]])
    for r in range(world):
        assert os.listdir(d / f"rank_{r}") == [f"{d.name}.{fmt}"]
    return json.loads((d / "mindckpt.index.json").read_text())


@pytest.mark.parametrize("world,kind,fmt", [(4, "2d", "safetensors"), (2, "1d", "ckpt"),
                                            (8, "2d", "ckpt")])
def test_sliced_layout_strategy_and_part1_merge(tmp_path, world, kind, fmt):
    d = tmp_path / "step1"
    out = run_ranks(_saver, world, tmp_path, str(d), kind,
                    {"integrated_save": False, "format": fmt})
    assert all(o["mode"] == "sliced" and o["committed"] for o in out)
    ix = _check_dir(tmp_path, d, world, fmt)
    assert ix["world_size"] == world and not ix["remove_redundancy"]
    # the strategy file describes every sliced parameter, MindSpore's way
    lmap = load_layout_map(str(d / "strategy.ckpt"))
    assert set(lmap) == {n for n, *_ in zoo(kind)}
    # part 1's offline merge gives the full tensors
    from mindckpt.parallel.transform import transform_checkpoints

    transform_checkpoints(str(d), str(tmp_path / "merged"), "m", str(d / "strategy.ckpt"), None,
                          output_format=fmt)
    merged = mindckpt.load_checkpoint(str(tmp_path / "merged" / "rank_0" / f"m0.{fmt}"),
                                      format=fmt)
    for name, t in full_state(zoo(kind)).items():
        np.testing.assert_array_equal(np.asarray(merged[name].asnumpy()), np_of(t), name)


def test_rank_dir_path_form(tmp_path):
    path = lambda r: str(tmp_path / "ck" / f"rank_{r}" / "net-1_1.ckpt")  # noqa: E731
    run_ranks(_saver, 2, tmp_path, path, "1d", {"integrated_save": False})
    assert (tmp_path / "ck" / "mindckpt.commit").exists()
    assert (tmp_path / "ck" / "rank_1" / "net-1_1.ckpt").exists()


@pytest.mark.parametrize("world,kind", [(4, "2d"), (4, "1d")])
def test_remove_redundancy_writes_each_slice_once(tmp_path, world, kind):
    d = tmp_path / "dedup"
    out = run_ranks(_saver, world, tmp_path, str(d), kind,
                    {"remove_redundancy": True, "format": "safetensors"})
    ix = _check_dir(tmp_path, d, world, "safetensors")
    assert ix["remove_redundancy"]
    # each distinct slice exactly once; the layout-less 'step' in every file
    for name, p in ix["params"].items():
        boxes = [tuple(map(tuple, c["box"])) for c in p["chunks"]]
        if name == "step":
            assert len(boxes) == world
        else:
            assert len(boxes) == len(set(boxes))
    uniq = sum(np_of(t).nbytes for n, t in full_state(zoo(kind)).items() if n != "step")
    payload = 0
    for r in range(world):
        with mindckpt.open_checkpoint(str(d / f"rank_{r}" / "dedup.safetensors")) as h:
            assert h.metadata()["remove_redundancy"] == "True"
            payload += sum(h.index[k].nbytes for k in h.keys() if k != "step")
    assert payload == uniq
    loads = [o["bytes"] for o in out]
    assert max(loads) - min(loads) <= max(np_of(t).nbytes for t in full_state(zoo(kind)).values())


# ----------------------------------------------------------------- reshard on load


@pytest.mark.parametrize("m,mkind,n,nkind,mode", [
    (4, "2d", 6, "2d", "sliced"),
    (8, "1d", 3, "1d", "sliced"),
    (2, "1d", 4, "2d", "dedup"),
    (4, "2d", 2, "1d", "dedup"),
    (4, "1d", 1, "1d", "sliced"),
    (1, "1d", 4, "2d", "sliced"),
])
def test_reshard_m_to_n(tmp_path, m, mkind, n, nkind, mode):
    d = tmp_path / "ck"
    kwargs = {"integrated_save": False, "remove_redundancy": mode == "dedup",
              "format": "safetensors"}
    run_ranks(_saver, m, tmp_path, str(d), mkind, kwargs)
    out = run_ranks(_loader, n, tmp_path, str(d), nkind, mkind)
    for o in out:
        assert o["not_loaded"] == [] and o["ckpt_not_load"] == []
        _check_full(o["values"], mkind)
        # only the shard's bytes (each element once) plus headers
        assert o["payload"] == o["shard"]
        assert o["bytes_read"] <= 1.05 * o["shard"] + 4096 * m


def test_load_integrated_file_on_more_ranks(tmp_path):
    run_ranks(_saver, 2, tmp_path, str(tmp_path / "full"), "1d", {"writer_rank": 0})
    out = run_ranks(_loader, 4, tmp_path, str(tmp_path / "full.ckpt"), "2d", "1d")
    for o in out:
        _check_full(o["values"], "1d")
        assert o["payload"] == o["shard"]


def _own_file_restore(rank, world, d, kind):
    from mindckpt.parallel.load import restore_redundancy

    mesh = make_mesh(world, kind)
    target = dtensor_state(mesh, zoo(kind), zeros=True)
    own = mindckpt.load_checkpoint(str(d / f"rank_{rank}" / "dedup.ckpt"))
    missing, extra = restore_redundancy(target, own)
    return {"missing": missing, "extra": extra,
            "values": {k: np_of(v.full_tensor() if hasattr(v, "full_tensor") else v)
                       for k, v in target.items()}}


def test_restore_redundancy_from_own_files(tmp_path):
    d = tmp_path / "dedup"
    run_ranks(_saver, 4, tmp_path, str(d), "2d", {"remove_redundancy": True})
    out = run_ranks(_own_file_restore, 4, tmp_path, d, "2d")
    for o in out:
        assert o["missing"] == [] and o["extra"] == []
        _check_full(o["values"], "2d")


def _tp_module(rank, world, d):
    import torch.nn as nn
    from torch.distributed.tensor.parallel import (ColwiseParallel, RowwiseParallel,
                                                   parallelize_module)

    from mindckpt.parallel.load import load_distributed
    from mindckpt.parallel.save import save_distributed

    mesh = make_mesh(world, "1d")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 24), nn.ReLU(), nn.Linear(24, 8))
    full = {k: v.detach().clone() for k, v in net.state_dict().items()}
    parallelize_module(net, mesh, {"0": ColwiseParallel(), "2": RowwiseParallel()})
    save_distributed(net, f"{d}/tp", writer_rank=0)
    save_distributed(net, f"{d}/tp_sliced", integrated_save=False)
    torch.manual_seed(1)
    other = nn.Sequential(nn.Linear(8, 24), nn.ReLU(), nn.Linear(24, 8))
    parallelize_module(other, mesh, {"0": RowwiseParallel(), "2": ColwiseParallel()})
    res = load_distributed(f"{d}/tp_sliced", other)
    got = {k: np_of(v.full_tensor()) for k, v in other.state_dict().items()}
    return list(res), got, {k: np_of(v) for k, v in full.items()}


def test_tensor_parallel_module(tmp_path):
    out = run_ranks(_tp_module, 2, tmp_path, str(tmp_path))
    (missing, extra), got, full = out[0]
    assert missing == [] and extra == []
    for k in full:
        np.testing.assert_array_equal(got[k], full[k], err_msg=k)
    ref = mindckpt.load_checkpoint(str(tmp_path / "tp.ckpt"))
    for k in full:
        np.testing.assert_array_equal(ref[k].asnumpy(), full[k], err_msg=k)


def _pipeline(rank, world, d):
    from mindckpt.parallel.layout import TensorLayout
    from mindckpt.parallel.save import save_distributed

    # 2 stages x 2 ranks: stage 0 holds enc.w (split on dim 0), stage 1 holds dec.w (dim 1)
    stage = rank // 2
    enc = TensorLayout((2,), (0, -1), (8, 4), stages=(0,))
    dec = TensorLayout((2,), (-1, 0), (4, 8), stages=(1,))
    full = full_state([("enc.w", (8, 4), "float32", None), ("dec.w", (4, 8), "float32", None)])
    name, lay = ("enc.w", enc) if stage == 0 else ("dec.w", dec)
    local = full[name][tuple(slice(a, b) for a, b in lay.box(rank))].contiguous()
    sd, lays = {name: local, "step": full["step"]}, {name: lay}
    save_distributed(sd, f"{d}/pp", layouts=lays, writer_rank=0)
    save_distributed(sd, f"{d}/pp_sliced", layouts=lays, integrated_save=False)
    return True


def test_pipeline_stages(tmp_path):
    run_ranks(_pipeline, 4, tmp_path, str(tmp_path))
    full = full_state([("enc.w", (8, 4), "float32", None), ("dec.w", (4, 8), "float32", None)])
    got = mindckpt.load_checkpoint(str(tmp_path / "pp.ckpt"))
    assert list(got) == ["enc.w", "step", "dec.w"]
    from mindckpt.parallel.layout import TensorLayout
    from mindckpt.parallel.load import read_shards

    lmap = load_layout_map(str(tmp_path / "pp_sliced" / "strategy.ckpt"))
    assert lmap["enc.w"].stages == (0,) and lmap["dec.w"].stages == (1,)
    rep = {n: TensorLayout.replicated(np_of(t).shape) for n, t in full.items()}
    merged = read_shards(str(tmp_path / "pp_sliced"), rep)
    for n, t in full.items():
        np.testing.assert_array_equal(got[n].asnumpy(), np_of(t), n)
        np.testing.assert_array_equal(merged[n], np_of(t), n)


def _load_ms_dir(rank, world, d, strategy, kind, names_from):
    from mindckpt.parallel.load import load_distributed

    mesh = make_mesh(world, kind)
    target = dtensor_state(mesh, zoo(kind, names_from), zeros=True)
    target.pop("step")
    res = load_distributed(d, target, strategy=strategy)
    return {"missing": res.param_not_load, "payload": res.payload_bytes,
            "shard": res.shard_bytes,
            "values": {k: np_of(v.full_tensor()) for k, v in target.items()}}


def test_mindspore_style_directory_with_strategy(tmp_path):
    # a rank_<r>/ directory and a strategy file, no index nor commit (what MindSpore writes)
    d = tmp_path / "ms_style"
    run_ranks(_saver, 4, tmp_path, str(d), "2d", {"integrated_save": False})
    (d / "mindckpt.commit").unlink()
    (d / "mindckpt.index.json").unlink()
    out = run_ranks(_load_ms_dir, 2, tmp_path, str(d), str(d / "strategy.ckpt"), "1d", "2d")
    want = full_state(zoo("2d"))
    for o in out:
        assert o["missing"] == [] and o["payload"] == o["shard"]
        for name, v in o["values"].items():
            np.testing.assert_array_equal(v, np_of(want[name]), err_msg=name)


def _assign(rank, world, path):
    from mindckpt.parallel.load import assign_shards

    mesh = make_mesh(world, "2d")
    target = dtensor_state(mesh, zoo("2d"), zeros=True)
    full = mindckpt.load_checkpoint(path)  # MindSpore's two-step load, full tensors
    missing, extra = assign_shards(target, full)
    return missing, extra, {k: np_of(v.full_tensor() if hasattr(v, "full_tensor") else v)
                            for k, v in target.items()}


def test_assign_full_dict_into_dtensor_net(tmp_path):
    run_ranks(_saver, 2, tmp_path, str(tmp_path / "f"), "1d", {"writer_rank": 0})
    mindckpt.save_checkpoint(full_state(zoo("2d")), str(tmp_path / "g"))
    for missing, extra, values in run_ranks(_assign, 4, tmp_path, str(tmp_path / "g.ckpt")):
        assert missing == [] and extra == []
        _check_full(values, "2d")
