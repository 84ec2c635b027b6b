"""Golden files written by real MindSpore 2.10 (tests/golden/parallel/, see its README): the
main reshard cases run without MindSpore."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import mindckpt as ms
from mindckpt.parallel import (
    build_searched_strategy,
    rank_list_for_transform,
    transform_checkpoints,
    unified_safetensors,
)

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden",
                      "parallel")
MANIFEST = json.load(open(os.path.join(GOLDEN, "manifest.json")))
MODEL = {n: np.frombuffer(bytes.fromhex(d["hex"]), np.float32).reshape(d["shape"])
         for n, d in MANIFEST["model"].items()}


def _strategy(case, tag):
    p = os.path.join(GOLDEN, case, f"{tag}_strategy.ckpt")
    return p if os.path.exists(p) else None


def _load(path, fmt="ckpt"):
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(path, format=fmt).items()}


@pytest.mark.parametrize("case", sorted(MANIFEST["cases"]))
def test_mindspore_strategy_files_parse_to_the_recorded_layouts(case):
    for tag in ("src", "dst"):
        want = MANIFEST["cases"][case][tag]
        path = _strategy(case, tag)
        if want is None:
            assert path is None
            continue
        got = build_searched_strategy(path)
        assert sorted(got) == sorted(want)
        for n, lay in got.items():
            assert [d.dim for d in lay.dev_matrix] == [want[n]["dev_matrix"]]
            assert [t.dim for t in lay.tensor_map] == want[n]["tensor_maps"]
            assert (lay.field, lay.opt_weight_shard_step, lay.opt_weight_shard_size) == (0, 0, 0)


@pytest.mark.parametrize("case", sorted(MANIFEST["cases"]))
def test_transform_equals_mindspores_output(tmp_path, case):
    info = MANIFEST["cases"][case]
    transform_checkpoints(os.path.join(GOLDEN, case, "src"), str(tmp_path), "g",
                          _strategy(case, "src"), _strategy(case, "dst"))
    for r in range(info["dst_world"]):
        ours = _load(str(tmp_path / f"rank_{r}" / f"g{r}.ckpt"))
        theirs = _load(os.path.join(GOLDEN, case, "ms_out", f"rank_{r}", f"g{r}.ckpt"))
        assert list(ours) == list(theirs) == info["ms_out_names"][str(r)]
        for n in ours:
            np.testing.assert_array_equal(ours[n], theirs[n], err_msg=f"{case} rank {r} {n}")
        with open(tmp_path / f"rank_{r}" / f"g{r}.ckpt", "rb") as a, \
                open(os.path.join(GOLDEN, case, "ms_out", f"rank_{r}", f"g{r}.ckpt"), "rb") as b:
            assert a.read() == b.read()  # byte-identical .ckpt output


@pytest.mark.parametrize("case", sorted(MANIFEST["cases"]))
def test_rank_lists_match_mindspore(case):
    info = MANIFEST["cases"][case]
    for r, want in info["ms_rank_lists"].items():
        got = rank_list_for_transform(int(r), _strategy(case, "src"), _strategy(case, "dst"))
        assert len(got) <= len(want)
        if len(got) == len(want):
            assert got == want


def test_unified_equals_mindspores_output(tmp_path):
    root = os.path.join(GOLDEN, "unified")
    unified_safetensors(os.path.join(root, "src"), os.path.join(root, "src_strategy.ckpt"),
                        str(tmp_path))
    theirs_dir = os.path.join(root, "ms_unified")
    assert sorted(os.listdir(tmp_path)) == sorted(os.listdir(theirs_dir))
    for f in os.listdir(theirs_dir):
        if f.endswith(".json"):
            assert json.load(open(tmp_path / f)) == json.load(open(os.path.join(theirs_dir, f)))
            continue
        ours = _load(str(tmp_path / f), "safetensors")
        theirs = _load(os.path.join(theirs_dir, f), "safetensors")
        assert sorted(ours) == sorted(theirs)
        for n in ours:
            np.testing.assert_array_equal(ours[n], theirs[n])
            if n in MODEL:
                np.testing.assert_array_equal(ours[n], MODEL[n])
