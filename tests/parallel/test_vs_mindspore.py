"""Live checks against real MindSpore 2.10 (through tests/interop/ms_oracle.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import mindckpt as ms
from mindckpt.parallel.strategy import build_searched_strategy, merge_pipeline_strategys, \
    write_strategy
from mindckpt.parallel.transform import rank_list_for_transform, transform_checkpoints

import _cases as C  # noqa: E402
import ms_oracle as mso  # noqa: E402

pytestmark = pytest.mark.mindspore


@pytest.fixture(autouse=True)
def _need_ms():
    mso.require_mindspore()


def _strategy_pair(tmp_path, src, dst):
    paths = []
    for tag, lays in (("src", src), ("dst", dst)):
        if lays is None:
            paths.append(None)
            continue
        p = str(tmp_path / f"{tag}_strategy.ckpt")
        mso.ms_strategy_write(p, {n: C.ms_layout_spec(x) for n, x in lays.items()})
        paths.append(p)
    return paths


def _load_dir(directory, fmt="ckpt"):
    out = {}
    for d in sorted(os.listdir(directory)):
        files = os.listdir(os.path.join(directory, d))
        assert len(files) == 1, files
        got = ms.load_checkpoint(os.path.join(directory, d, files[0]), format=fmt)
        out[int(d[5:])] = {k: v.asnumpy() for k, v in got.items()}
    return out


def _check_expected(result, dst, model):
    for r, params in result.items():
        for n, full in model.items():
            want = C.expected_slice(full, dst, n, r)
            if want is None:
                assert n not in params
                continue
            np.testing.assert_array_equal(params[n], want, err_msg=f"rank {r} {n}")
        assert int(params["global_step"]) == 42


@pytest.mark.parametrize("case", sorted(C.CASES))
def test_transform_equals_mindspore_and_numpy(tmp_path, case):
    src, dst = C.CASES[case]
    model = C.full_model()
    C.write_sources(tmp_path / "src", src, model)
    s_path, d_path = _strategy_pair(tmp_path, src, dst)
    mso.ms_parallel("transform_checkpoints", str(tmp_path / "src"), str(tmp_path / "ms"), "ms",
                    s_path, d_path)
    transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "ours"), "ms", s_path, d_path)
    ours, theirs = _load_dir(tmp_path / "ours"), _load_dir(tmp_path / "ms")
    assert sorted(ours) == sorted(theirs) == list(range(C.world(dst)))
    _check_expected(ours, dst, model)
    _check_expected(theirs, dst, model)
    for r in ours:
        assert list(ours[r]) == list(theirs[r])  # same names, same order
    # MindSpore reads our outputs, same values
    for r in ours:
        got = mso.load(str(tmp_path / "ours" / f"rank_{r}" / f"ms{r}.ckpt"))
        assert {e["name"]: mso.to_numpy(e).tobytes() for e in got} == \
            {n: np.ascontiguousarray(a).tobytes() for n, a in ours[r].items()}
    # rank lists: plain ints, the same set and order as MindSpore's (or shorter)
    for r in range(C.world(dst)):
        theirs_list = [x["value"] if isinstance(x, dict) else x for x in
                       mso.ms_parallel("rank_list_for_transform", r, s_path, d_path)]
        mine = rank_list_for_transform(r, s_path, d_path)
        assert all(type(x) is int for x in mine)
        assert len(mine) <= len(theirs_list)
        if len(mine) == len(theirs_list):
            assert mine == theirs_list


def test_mindspore_written_strategy_parses_to_the_same_layouts(tmp_path):
    for case, (src, _dst) in C.CASES.items():
        if src is None:
            continue
        p = str(tmp_path / f"{case}.ckpt")
        mso.ms_strategy_write(p, {n: C.ms_layout_spec(x) for n, x in src.items()})
        ours = build_searched_strategy(p)
        theirs = mso.ms_strategy_read(p)
        assert sorted(ours) == sorted(theirs)
        for n, lay in ours.items():
            t = theirs[n]
            assert [d.dim for d in lay.dev_matrix] == t["dev_matrix"]
            assert [d.dim for d in lay.tensor_map] == t["tensor_maps"]
            assert [d.dim for d in lay.param_split_shape] == t["param_split_shape"]
            assert (lay.field, lay.opt_weight_shard_step, lay.opt_weight_shard_size) == \
                (t["field"], t["opt_weight_shard_step"], t["opt_weight_shard_size"])
            assert tuple(lay.map_entries()) == src[n].tensor_map
        # and MindSpore parses what we write
        q = str(tmp_path / f"{case}_ours.ckpt")
        write_strategy(q, src)
        assert mso.ms_strategy_read(q) == theirs


def test_pipeline_2x2_to_1_and_to_2x1(tmp_path):
    model = C.full_model()
    C.write_sources(tmp_path / "src", C.PIPELINE_SRC, model)
    stra = tmp_path / "stages"
    os.makedirs(stra)
    for stage in (0, 1):
        lays = {n: x for n, x in C.PIPELINE_SRC.items() if stage in x.stages}
        mso.ms_strategy_write(stra / f"s{stage}.ckpt",
                              {n: C.ms_layout_spec(x) for n, x in lays.items()}, stage=stage)
    merged_ms, merged_ours = str(tmp_path / "m_ms.ckpt"), str(tmp_path / "m_ours.ckpt")
    mso.ms_parallel("merge_pipeline_strategys", str(stra), merged_ms)
    merge_pipeline_strategys(str(stra), merged_ours)
    assert mso.ms_strategy_read(merged_ours) == mso.ms_strategy_read(merged_ms)
    # -> 1
    mso.ms_parallel("transform_checkpoints", str(tmp_path / "src"), str(tmp_path / "ms1"), "p",
                    merged_ms, None)
    transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "ours1"), "p", merged_ours, None)
    ours, theirs = _load_dir(tmp_path / "ours1"), _load_dir(tmp_path / "ms1")
    _check_expected(ours, None, model)
    _check_expected(theirs, None, model)
    # -> 2 stages x 1
    dst_p = str(tmp_path / "dst_pp.ckpt")
    write_strategy(dst_p, C.PIPELINE_DST_2X1)
    mso.ms_parallel("transform_checkpoints", str(tmp_path / "src"), str(tmp_path / "ms2"), "p",
                    merged_ms, dst_p)
    transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "ours2"), "p", merged_ours, dst_p)
    ours, theirs = _load_dir(tmp_path / "ours2"), _load_dir(tmp_path / "ms2")
    assert sorted(ours) == sorted(theirs) == [0, 1]
    _check_expected(ours, C.PIPELINE_DST_2X1, model)
    _check_expected(theirs, C.PIPELINE_DST_2X1, model)


def test_4_to_6_works_where_mindspore_refuses(tmp_path):
    src = C._std([2, 2], [1, 0], [0], [-1, 1], [0, -1])
    dst = {"w": C.L([2, 3], [-1, 1], "w"), "b": C.L([2, 3], [1], "b"),
           "emb": C.L([6], [-1, -1], "emb"), "v": C.L([2, 3], [1, -1], "v")}
    model = C.full_model()
    C.write_sources(tmp_path / "src", src, model)
    s_path, d_path = _strategy_pair(tmp_path, src, dst)
    r = mso.call({"op": "ms_parallel", "fn": "transform_checkpoints",
                  "args": [str(tmp_path / "src"), str(tmp_path / "ms"), "x", s_path, d_path]},
                 check=False)
    assert not r["ok"]
    transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "ours"), "x", s_path, d_path)
    _check_expected(_load_dir(tmp_path / "ours"), dst, model)
