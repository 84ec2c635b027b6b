"""Live interop with real MindSpore 2.10 (tests/interop/ms_oracle.py): integrated files load
in MindSpore; per-rank files plus our strategy file are merged by MindSpore's
transform_checkpoints into the same full tensors; a de-duplicated directory is merged by
MindSpore's unified_safetensors(merge_with_redundancy=False)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import ms_oracle as mso
from _harness import np_of, run_ranks
from _zoo import dtensor_state, full_state, make_mesh, zoo

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.mindspore


def _zoo(kind):
    # MindSpore 2.10's numpy here has no bfloat16 for safetensors ("The Numpy bfloat16 data
    # type is not supported now"): the interop zoo uses float32 in its place
    return [(n, s, "float32" if d == "bfloat16" else d, p) for n, s, d, p in zoo(kind)]


def _saver(rank, world, path, kind, kwargs):
    from mindckpt.parallel.save import save_distributed

    mesh = make_mesh(world, kind)
    save_distributed(dtensor_state(mesh, _zoo(kind)), path(rank) if callable(path) else path,
                     **kwargs)
    return True


def _check(entries, kind):
    got = {e["name"]: mso.to_numpy(e) for e in entries}
    for name, t in full_state(_zoo(kind)).items():
        np.testing.assert_array_equal(got[name].astype(np.float64),
                                      np_of(t).astype(np.float64), err_msg=name)


@pytest.mark.parametrize("fmt", ["ckpt", "safetensors"])
def test_integrated_file_loads_in_mindspore(tmp_path, fmt):
    crc = True
    run_ranks(_saver, 4, tmp_path, str(tmp_path / "full"), "2d",
              {"writer_rank": 0, "format": fmt, "crc_check": crc})
    mso.require_mindspore()
    _check(mso.load(str(tmp_path / f"full.{fmt}"), format=fmt, crc_check=crc), "2d")


@pytest.mark.parametrize("world,kind,fmt", [(4, "2d", "ckpt"), (8, "2d", "safetensors"),
                                            (2, "1d", "safetensors")])
def test_mindspore_transform_merges_our_sliced_directory(tmp_path, world, kind, fmt):
    d = tmp_path / "sliced"
    run_ranks(_saver, world, tmp_path, str(d), kind, {"integrated_save": False, "format": fmt})
    mso.require_mindspore()
    out = tmp_path / "ms"
    mso.ms_parallel("transform_checkpoints", str(d), str(out), "m", str(d / "strategy.ckpt"),
                    None, output_format=fmt)
    files = os.listdir(out / "rank_0")
    assert files == [f"m0.{fmt}"]
    _check(mso.load(str(out / "rank_0" / files[0]), format=fmt), kind)


def test_mindspore_unifies_our_dedup_directory(tmp_path):
    d = tmp_path / "dedup"
    run_ranks(_saver, 4, tmp_path, str(d), "2d",
              {"remove_redundancy": True, "format": "safetensors"})
    mso.require_mindspore()
    out = tmp_path / "uni"
    mso.ms_parallel("unified_safetensors", str(d), str(d / "strategy.ckpt"), str(out),
                    merge_with_redundancy=False, max_process_num=1)
    parts = sorted(p for p in os.listdir(out) if p.startswith("part"))
    got = {}
    for p in parts:
        got.update({e["name"]: mso.to_numpy(e)
                    for e in mso.load(str(out / p), format="safetensors")})
    hyper = out / "hyper_param.safetensors"
    if hyper.exists():
        got.update({e["name"]: mso.to_numpy(e) for e in mso.load(str(hyper),
                                                                 format="safetensors")})
    for name, t in full_state(_zoo("2d")).items():
        np.testing.assert_array_equal(got[name].astype(np.float64),
                                      np_of(t).astype(np.float64), err_msg=name)


def test_mindspore_transform_merges_our_pipeline_directory(tmp_path):
    from test_save_load import _pipeline

    run_ranks(_pipeline, 4, tmp_path, str(tmp_path))
    mso.require_mindspore()
    d = tmp_path / "pp_sliced"
    mso.ms_parallel("transform_checkpoints", str(d), str(tmp_path / "ms"), "m",
                    str(d / "strategy.ckpt"), None)
    got = {e["name"]: mso.to_numpy(e) for e in mso.load(str(tmp_path / "ms" / "rank_0" /
                                                              "m0.ckpt"))}
    full = full_state([("enc.w", (8, 4), "float32", None), ("dec.w", (4, 8), "float32", None)])
    for n, t in full.items():
        np.testing.assert_array_equal(got[n], np_of(t), err_msg=n)


def _load_into_3(rank, world, d, strategy):
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    from mindckpt.parallel.load import load_distributed

    mesh = make_mesh(world, "1d")
    target = {"a": distribute_tensor(torch.zeros(24, 24), mesh, [Shard(1)]),
              "b": distribute_tensor(torch.zeros(24, 12), mesh, [Shard(0)]),
              "global_step": distribute_tensor(torch.zeros((), dtype=torch.int32), mesh,
                                               [Replicate()])}
    res = load_distributed(d, target, strategy=strategy)
    return list(res), {k: np_of(v.full_tensor()) for k, v in target.items()}


def test_mindspore_written_directory_loads_on_3_ranks(tmp_path):
    """MindSpore saves 4 ranks' slices (dev_matrix [2, 2]) and writes the strategy file; we
    reshard them onto 3 ranks (MindSpore's own transform refuses 4 -> 3)."""
    mso.require_mindspore()
    from mindckpt.parallel.layout import TensorLayout

    full = {"a": np.arange(24 * 24, dtype=np.float32).reshape(24, 24),
            "b": np.arange(24 * 12, dtype=np.float32).reshape(24, 12) * -1}
    lays = {"a": TensorLayout((2, 2), (1, 0), (24, 24)),
            "b": TensorLayout((2, 2), (-1, 0), (24, 12))}
    d = tmp_path / "ms_dir"
    for r in range(4):
        entries = [mso.entry(n, np.ascontiguousarray(full[n][tuple(
            slice(a, b) for a, b in lays[n].box(r))])) for n in full]
        entries.append(mso.entry("global_step", np.array(42, np.int32)))
        os.makedirs(d / f"rank_{r}")
        mso.save(str(d / f"rank_{r}" / "net-1_1.ckpt"), entries)
    mso.ms_strategy_write(str(tmp_path / "strategy.ckpt"), {
        "a": {"dev_matrix": [2, 2], "tensor_maps": [[1, 0]]},
        "b": {"dev_matrix": [2, 2], "tensor_maps": [[-1, 0]]}})
    out = run_ranks(_load_into_3, 3, tmp_path, str(d), str(tmp_path / "strategy.ckpt"))
    for (missing, extra), got in out:
        assert missing == [] and extra == []
        for n in full:
            np.testing.assert_array_equal(got[n], full[n], err_msg=n)
        assert int(got["global_step"]) == 42
