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


# --------------------------------------------------------------------------- merge, unified


@pytest.mark.parametrize("lay", [
    C.L([2, 2], [1, 0], "w"), C.L([2, 2], [-1, 0], "w"), C.L([2, 4], [0, 1], "w"),
    C.L([2, 2, 2], [2, 0], "w"),
])
def test_merge_sliced_parameter_equals_mindspore(tmp_path, lay):
    from mindckpt.parallel import merge_sliced_parameter
    full = C.full_model()["w"]
    p = str(tmp_path / "s.ckpt")
    write_strategy(p, {"w": lay})
    parts = [np.ascontiguousarray(full[tuple(slice(a, b) for a, b in lay.box(r))])
             for r in range(lay.device_num)]
    theirs = mso.to_numpy(mso.ms_merge_sliced([mso.entry("w", x) for x in parts], p))
    ours = merge_sliced_parameter([ms.Parameter(ms.Tensor(x), "w") for x in parts],
                                  build_searched_strategy(p)).asnumpy()
    np.testing.assert_array_equal(ours, full)
    np.testing.assert_array_equal(theirs, full)


def test_merge_uneven_equals_mindspore_and_nested_is_fixed(tmp_path):
    from mindckpt.parallel import merge_sliced_parameter
    from mindckpt.parallel.layout import TensorLayout
    full = np.arange(14, dtype=np.float32).reshape(7, 2)
    lay = TensorLayout([3], [0, -1], [7, 2], param_split_shape=[3, 2, 2])
    p = str(tmp_path / "u.ckpt")
    write_strategy(p, {"u": lay})
    parts = [full[a:b] for (a, b), _ in (lay.box(r) for r in range(3))]
    theirs = mso.to_numpy(mso.ms_merge_sliced([mso.entry("u", x) for x in parts], p))
    ours = merge_sliced_parameter([ms.Parameter(ms.Tensor(x), "u") for x in parts],
                                  build_searched_strategy(p)).asnumpy()
    np.testing.assert_array_equal(theirs, full)
    np.testing.assert_array_equal(ours, full)
    # nested map: MindSpore reads only the first TensorMap entry (defect)
    emb = C.full_model()["emb"]
    nl = C.L([2, 2], [(0, 1), -1], "emb")
    q = str(tmp_path / "n.ckpt")
    write_strategy(q, {"emb": nl})
    parts = [np.ascontiguousarray(emb[tuple(slice(a, b) for a, b in nl.box(r))])
             for r in range(4)]
    ours = merge_sliced_parameter([ms.Parameter(ms.Tensor(x), "emb") for x in parts],
                                  build_searched_strategy(q)).asnumpy()
    np.testing.assert_array_equal(ours, emb)
    r = mso.call({"op": "ms_merge_sliced", "slices": [mso.entry("emb", x) for x in parts],
                  "strategy_path": q}, check=False)
    assert not r["ok"] or not np.array_equal(mso.to_numpy(r["merged"]), emb)


def _unified_pair(tmp_path, src, model, fmt="safetensors", **kw):
    C.write_sources(tmp_path / "src", src, model, fmt=fmt)
    s_path = str(tmp_path / "src_strategy.ckpt")
    mso.ms_strategy_write(s_path, {n: C.ms_layout_spec(x) for n, x in src.items()})
    from mindckpt.parallel import unified_safetensors
    drop = kw.pop("choice_drop", None)
    ours_kw = dict(kw)
    if drop:
        ours_kw["choice_func"] = lambda n: n not in drop
        kw["choice_drop"] = drop
    mso.ms_parallel("unified_safetensors", str(tmp_path / "src"), s_path, str(tmp_path / "ms"),
                    **kw)
    unified_safetensors(str(tmp_path / "src"), s_path, str(tmp_path / "ours"), **ours_kw)
    return s_path


def _read_dir(d):
    out = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            out[f] = {k: v.asnumpy() for k, v in
                      ms.load_checkpoint(os.path.join(d, f), format="safetensors").items()}
    return out


@pytest.mark.parametrize("case", ["2x2_to_1", "2x4_to_2", "optshard_2x2_to_2", "nested_2x2_to_1"])
def test_unified_safetensors_equals_mindspore(tmp_path, case):
    import json
    src = C.CASES[case][0]
    model = C.full_model()
    _unified_pair(tmp_path, src, model)
    ours, theirs = _read_dir(tmp_path / "ours"), _read_dir(tmp_path / "ms")
    assert sorted(ours) == sorted(theirs)
    for f in ours:
        assert sorted(ours[f]) == sorted(theirs[f])
        for n in ours[f]:
            np.testing.assert_array_equal(ours[f][n], theirs[f][n])
    for n, a in model.items():
        np.testing.assert_array_equal(ours["part0.safetensors"][n], a)
    jo = json.load(open(tmp_path / "ours" / "param_name_map.json"))
    jt = json.load(open(tmp_path / "ms" / "param_name_map.json"))
    assert jo["metadata"] == jt["metadata"] and jo["weight_map"] == jt["weight_map"]
    # MindSpore reads our unified directory into per-rank files
    dst = C.CASES["2x2_to_2"][1]
    d_path = str(tmp_path / "dst.ckpt")
    write_strategy(d_path, dst)
    for tag in ("ours", "ms"):
        mso.ms_parallel("load_distributed_checkpoint", None, predict_strategy=d_path,
                        format="safetensors", unified_safetensors_dir=str(tmp_path / "ours"),
                        dst_safetensors_dir=str(tmp_path / f"per_ms_from_{tag}"),
                        max_process_num=1)
    from mindckpt.parallel import load_distributed_checkpoint
    load_distributed_checkpoint(None, predict_strategy=d_path, format="safetensors",
                                unified_safetensors_dir=str(tmp_path / "ms"),
                                dst_safetensors_dir=str(tmp_path / "per_ours"))
    for r in range(2):
        a = _read_dir(tmp_path / "per_ours" / f"rank_{r}")["net.safetensors"]
        b = _read_dir(tmp_path / "per_ms_from_ours" / f"rank_{r}")["net.safetensors"]
        assert sorted(a) == sorted(b)
        for n in a:
            np.testing.assert_array_equal(a[n], b[n])
            if n in model:
                np.testing.assert_array_equal(
                    a[n], model[n][tuple(slice(x, y) for x, y in dst[n].box(r))])


def test_unified_choice_func_drop_is_complete(tmp_path):
    _unified_pair(tmp_path, C.CASES["2x2_to_1"][0], C.full_model(), choice_drop=["w"])
    theirs = _read_dir(tmp_path / "ms")
    ours = _read_dir(tmp_path / "ours")
    assert "w" not in ours["part0.safetensors"] and "w" not in ours["hyper_param.safetensors"]
    # MindSpore's defect: one rank's slice of the dropped parameter lands in hyper_param
    assert theirs["hyper_param.safetensors"]["w"].shape == (4, 8)


# --------------------------------------------------------------------------- MindSpore defects


def test_safetensors_sources_transform_right_where_mindspore_may_not(tmp_path):
    src, dst = C.CASES["2x2_to_2"]
    model = C.full_model()
    C.write_sources(tmp_path / "src", src, model, fmt="safetensors")
    s_path, d_path = _strategy_pair(tmp_path, src, dst)
    transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "ours"), "x", s_path, d_path,
                          output_format="safetensors")
    mso.ms_parallel("transform_checkpoints", str(tmp_path / "src"), str(tmp_path / "ms"), "x",
                    s_path, d_path, output_format="safetensors")
    ours = _load_dir(tmp_path / "ours", "safetensors")
    _check_expected(ours, dst, model)
    theirs = _load_dir(tmp_path / "ms", "safetensors")
    wrong = [(r, n) for r in theirs for n in model
             if not np.array_equal(theirs[r][n], C.expected_slice(model[n], dst, n, r))]
    print("MindSpore safetensors->safetensors wrong entries:", wrong)


@pytest.mark.parametrize("case", ["2x2_to_1", "2x2_to_2"])
def test_dedup_sources(tmp_path, case):
    """remove_redundancy-style sources (each replica set's slice in its first member only):
    MindSpore documents them as unsupported; mindckpt reshards them."""
    src, dst = C.CASES[case]
    model = C.full_model()
    C.write_sources(tmp_path / "src", src, model)
    for n, lay in src.items():
        for group in lay.replica_groups():
            for r in group[1:]:
                path = str(tmp_path / "src" / f"rank_{r}" / "net-1_1.ckpt")
                kept = ms.load_checkpoint(path, choice_func=lambda k, n=n: k != n)
                os.chmod(path, 0o600)
                ms.save_checkpoint(kept, path)
    s_path, d_path = _strategy_pair(tmp_path, src, dst)
    r = mso.call({"op": "ms_parallel", "fn": "transform_checkpoints",
                  "args": [str(tmp_path / "src"), str(tmp_path / "ms"), "x", s_path, d_path]},
                 check=False)
    print(case, "MindSpore on dedup sources:", "ok" if r["ok"] else
          f"{r['error_type']}: {r['error'][:160]}")
    transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "ours"), "x", s_path, d_path)
    _check_expected(_load_dir(tmp_path / "ours"), dst, model)


def test_moments_missing_from_strategy(tmp_path):
    from mindckpt.parallel.layout import TensorLayout
    w = C.full_model()["w"]
    lay = TensorLayout([2], [0, -1], [8, 16])
    for r in range(2):
        part = w[tuple(slice(a, b) for a, b in lay.box(r))]
        ms.save_checkpoint([{"name": "w", "data": ms.Tensor(part)},
                            {"name": "moments.w", "data": ms.Tensor(part * 2)}],
                           str(tmp_path / "src" / f"rank_{r}" / "a.ckpt")) \
            if os.makedirs(tmp_path / "src" / f"rank_{r}", exist_ok=True) is None else None
    s_path = str(tmp_path / "s.ckpt")
    mso.ms_strategy_write(s_path, {"w": C.ms_layout_spec(lay)})
    mso.ms_parallel("transform_checkpoints", str(tmp_path / "src"), str(tmp_path / "ms"), "x",
                    s_path, None)
    transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "ours"), "x", s_path, None)
    ours, theirs = _load_dir(tmp_path / "ours")[0], _load_dir(tmp_path / "ms")[0]
    np.testing.assert_array_equal(ours["moments.w"], w * 2)
    np.testing.assert_array_equal(theirs["w"], w)
    assert theirs["moments.w"].shape == (4, 16)  # MindSpore: one rank's slice, verbatim


def test_dash_names_break_mindspore_not_us(tmp_path):
    from mindckpt.parallel.layout import TensorLayout
    w = C.full_model()["w"]
    lay = TensorLayout([2], [0, -1], [8, 16])
    for r in range(2):
        os.makedirs(tmp_path / "src" / f"rank_{r}", exist_ok=True)
        ms.save_checkpoint([{"name": "layer-1.w", "data": ms.Tensor(
            w[tuple(slice(a, b) for a, b in lay.box(r))])}],
            str(tmp_path / "src" / f"rank_{r}" / "a.ckpt"))
    s_path = str(tmp_path / "s.ckpt")
    mso.ms_strategy_write(s_path, {"layer-1.w": C.ms_layout_spec(lay)})
    r = mso.call({"op": "ms_parallel", "fn": "transform_checkpoints",
                  "args": [str(tmp_path / "src"), str(tmp_path / "ms"), "x", s_path, None]},
                 check=False)
    assert not r["ok"]
    transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "ours"), "x", s_path, None)
    np.testing.assert_array_equal(_load_dir(tmp_path / "ours")[0]["layer-1.w"], w)


def test_file_pick_in_a_rank_dir(tmp_path):
    # rank dirs with net-1_9 (old values) and net-1_10 (new): MindSpore takes net-1_9
    for r in range(2):
        d = tmp_path / "src" / f"rank_{r}"
        os.makedirs(d)
        for step, val in ((9, 1.0), (10, 2.0)):
            ms.save_checkpoint([{"name": "w", "data": ms.Tensor(np.full((2, 2), val,
                                                                        np.float32))}],
                               str(d / f"net-1_{step}.ckpt"))
    s_path = str(tmp_path / "s.ckpt")
    from mindckpt.parallel.layout import TensorLayout
    mso.ms_strategy_write(s_path, {"w": C.ms_layout_spec(TensorLayout([2], [0, -1], [4, 2]))})
    mso.ms_parallel("transform_checkpoints", str(tmp_path / "src"), str(tmp_path / "ms"), "x",
                    s_path, None)
    transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "ours"), "x", s_path, None)
    assert (_load_dir(tmp_path / "ms")[0]["w"] == 1.0).all()
    assert (_load_dir(tmp_path / "ours")[0]["w"] == 2.0).all()


def test_by_stage_transform_equals_mindspore(tmp_path):
    """A one-stage source strategy whose parameters are a strict subset of the destination's:
    MindSpore's by-stage variant, rank_<r>/<prefix><r>_part<stage>.<fmt>."""
    from mindckpt.parallel import transform_safetensors_by_stage
    model = C.full_model()
    stage_lays = {n: x for n, x in C.PIPELINE_SRC.items() if 1 in x.stages}
    for fmt in ("ckpt", "safetensors"):
        root = tmp_path / fmt
        for r in (2, 3):
            d = root / "src" / f"rank_{r}"
            os.makedirs(d)
            items = [{"name": n, "data": ms.Tensor(np.ascontiguousarray(
                model[n][tuple(slice(a, b) for a, b in lay.box(r))]))}
                for n, lay in stage_lays.items()]
            ms.save_checkpoint(items, str(d / f"net-1_1.{fmt}"), format=fmt)
        s_path = str(root / "stage1.ckpt")
        mso.ms_strategy_write(s_path, {n: C.ms_layout_spec(x) for n, x in stage_lays.items()},
                              current_stage=1, stage=1)
        dst = C.CASES["2x2_to_2"][1]
        d_path = str(root / "dst.ckpt")
        write_strategy(d_path, dst)
        if fmt == "ckpt":
            mso.ms_parallel("transform_checkpoints", str(root / "src"), str(root / "ms"), "s",
                            s_path, d_path)
            transform_checkpoints(str(root / "src"), str(root / "ours"), "s", s_path, d_path)
        else:
            # MindSpore 2.10's own transform_safetensors_by_stage crashes ('memoryview' object
            # has no attribute 'dtype'): only the numpy expectation is checked
            r = mso.call({"op": "ms_parallel", "fn": "transform_safetensors_by_stage",
                          "args": [str(root / "src"), str(root / "ms"), "s", s_path, d_path]},
                         check=False)
            assert not r["ok"] and "memoryview" in r["error"]
            transform_safetensors_by_stage(str(root / "src"), str(root / "ours"), "s", s_path,
                                           d_path)
        for r in range(2):
            assert os.listdir(root / "ours" / f"rank_{r}") == [f"s{r}_part1.{fmt}"]
            ours = _load_dir(root / "ours", fmt)[r]
            assert sorted(ours) == sorted(stage_lays)
            if fmt == "ckpt":
                assert os.listdir(root / "ms" / f"rank_{r}") == [f"s{r}_part1.{fmt}"]
                theirs = _load_dir(root / "ms", fmt)[r]
                assert sorted(theirs) == sorted(stage_lays)
            for n in ours:
                np.testing.assert_array_equal(
                    ours[n], model[n][tuple(slice(a, b) for a, b in dst[n].box(r))])
                if fmt == "ckpt":
                    np.testing.assert_array_equal(ours[n], theirs[n])


def test_json_strategy_written_by_us_parses_in_mindspore(tmp_path):
    src = C.CASES["optshard_2x2_to_2"][0]  # flat maps (MindSpore's JSON reader takes no nesting)
    j, p = str(tmp_path / "s.json"), str(tmp_path / "s.ckpt")
    write_strategy(j, src)
    write_strategy(p, src)
    assert mso.ms_strategy_read(j) == mso.ms_strategy_read(p)
