"""The reshard tools without MindSpore: numpy expectations, MindSpore's sharp edges fixed."""

from __future__ import annotations

import math
import os
import tempfile

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mindckpt as ms
from mindckpt.parallel import (
    TransformError,
    rank_list_for_transform,
    transform_checkpoint_by_rank,
    transform_checkpoints,
    transform_safetensors_by_rank,
    write_strategy,
)
from mindckpt.parallel.layout import TensorLayout
from mindckpt.parallel.transform import Resharder, collect_rank_files

import _cases as C  # noqa: E402


def save(path, values: dict, fmt="ckpt"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ms.save_checkpoint([{"name": n, "data": ms.Tensor(np.array(v, order="C"))}
                        for n, v in values.items()], path, format=fmt)


def load(path):
    fmt = "safetensors" if path.endswith(".safetensors") else "ckpt"
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(path, format=fmt).items()}


def sl(full, box):
    return full[tuple(slice(a, b) for a, b in box)]


def make_run(tmp, layouts, model, fmt="ckpt", drop=None, extra=None):
    """Per-rank files of ``layouts``; ``drop(name, rank)`` True leaves a tensor out."""
    world = C.world(layouts)
    for r in range(world):
        vals = {}
        for n, full in model.items():
            box = layouts[n].box(r)
            if box is not None and not (drop and drop(n, r)):
                vals[n] = sl(full, box)
        vals.update((extra or {}).get(r, {}))
        save(os.path.join(tmp, "src", f"rank_{r}", f"net-1_1.{fmt}"), vals, fmt)
    write_strategy(os.path.join(tmp, "src.ckpt"), layouts)


def check_out(out_dir, prefix, layouts, model, fmt="ckpt", world=None):
    world = world or C.world(layouts)
    for r in range(world):
        got = load(os.path.join(out_dir, f"rank_{r}", f"{prefix}{r}.{fmt}"))
        for n, full in model.items():
            want = full if layouts is None else (None if layouts[n].box(r) is None
                                                 else sl(full, layouts[n].box(r)))
            if want is None:
                assert n not in got
            else:
                np.testing.assert_array_equal(got[n], want, err_msg=f"rank {r} {n}")


def test_4_to_6_and_back(tmp_path):
    model = {"w": np.arange(96, dtype=np.float32).reshape(8, 12),
             "b": np.arange(12, dtype=np.float32)}
    src = {"w": TensorLayout([2, 2], [1, 0], [8, 12]), "b": TensorLayout([2, 2], [-1], [12])}
    dst = {"w": TensorLayout([6], [-1, 0], [8, 12]), "b": TensorLayout([6], [0], [12])}
    make_run(tmp_path, src, model)
    write_strategy(str(tmp_path / "dst.ckpt"), dst)
    transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "six"), "n",
                          str(tmp_path / "src.ckpt"), str(tmp_path / "dst.ckpt"))
    check_out(tmp_path / "six", "n", dst, model)
    transform_checkpoints(str(tmp_path / "six"), str(tmp_path / "back"), "n",
                          str(tmp_path / "dst.ckpt"), str(tmp_path / "src.ckpt"))
    check_out(tmp_path / "back", "n", src, model)


@st.composite
def layout_pair(draw):
    shape = (draw(st.sampled_from([6, 12])), draw(st.sampled_from([4, 8])))

    def one():
        ndev = draw(st.sampled_from([1, 2, 3, 4, 6]))
        splits = [d for d in (1, 2, 3, 4, 6) if ndev % d == 0]
        a = draw(st.sampled_from([s for s in splits if shape[0] % s == 0]))
        rest = ndev // a
        b = draw(st.sampled_from([s for s in splits if rest % s == 0 and shape[1] % s == 0]))
        rep = ndev // (a * b)
        dev = [rep, a, b]
        return TensorLayout(dev, [1, 0], shape)

    return shape, one(), one()


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(layout_pair())
def test_any_pair_of_layouts_reshards_exactly(pair):
    shape, src, dst = pair
    full = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for r in range(src.device_num):
            p = os.path.join(tmp, f"r{r}.safetensors")
            save(p, {"w": sl(full, src.box(r))}, "safetensors")
            paths[r] = p
        write_strategy(os.path.join(tmp, "s.ckpt"), {"w": src})
        write_strategy(os.path.join(tmp, "d.ckpt"), {"w": dst})
        with Resharder(paths, os.path.join(tmp, "s.ckpt"), os.path.join(tmp, "d.ckpt")) as rs:
            for r in range(dst.device_num):
                np.testing.assert_array_equal(rs.produce("w", r), sl(full, dst.box(r)))
            # only the overlaps are read (a strided overlap as its rows when it is at least a
            # quarter of them): between the destination bytes and 4x that
            read = sum(f.bytes_read for f in rs.files.values())
            want = dst.device_num * math.prod(dst.local_shape()) * 8
            assert want <= read <= 4 * want
            if dst.tensor_strategy[1] == 1:
                assert read == want  # contiguous overlaps: exactly the destination bytes


def test_deduplicated_sources_are_accepted(tmp_path):
    model = C.full_model()
    src = C.CASES["2x2_to_2"][0]
    groups = {n: lay.replica_groups() for n, lay in src.items()}

    def drop(n, r):  # keep each replica set's data on one member only (rotating)
        for i, g in enumerate(groups[n]):
            if r in g:
                return r != g[i % len(g)]
        return False

    make_run(tmp_path, src, model, drop=drop)
    transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "one"), "x",
                          str(tmp_path / "src.ckpt"), None)
    check_out(tmp_path / "one", "x", None, model, world=1)


def test_dedup_with_a_missing_replica_set_names_the_ranks(tmp_path):
    model = {"w": np.arange(16, dtype=np.float32).reshape(4, 4)}
    src = {"w": TensorLayout([2, 2], [1, -1], [4, 4])}  # replicas (0,1) and (2,3)
    make_run(tmp_path, src, model, drop=lambda n, r: r in (2, 3))
    with pytest.raises(TransformError, match=r"'w'.*rank\(s\) \[2, 3\]"):
        transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "o"), "x",
                              str(tmp_path / "src.ckpt"), None)


def test_optimizer_moments_missing_from_the_strategy_inherit_the_layout(tmp_path):
    # MindSpore copies moments.w verbatim from one rank: shape (2, 6) instead of (4, 6)
    w = np.arange(24, dtype=np.float32).reshape(4, 6)
    m = w * 10
    lay = TensorLayout([2], [0, -1], [4, 6])
    for r in range(2):
        save(str(tmp_path / "src" / f"rank_{r}" / "a.ckpt"),
             {"w": sl(w, lay.box(r)), "moments.w": sl(m, lay.box(r)),
              "learning_rate": np.array(0.1, np.float32)})
    write_strategy(str(tmp_path / "s.ckpt"), {"w": lay})
    transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "o"), "x", str(tmp_path / "s.ckpt"))
    got = load(str(tmp_path / "o" / "rank_0" / "x0.ckpt"))
    np.testing.assert_array_equal(got["moments.w"], m)
    np.testing.assert_array_equal(got["w"], w)
    assert got["learning_rate"] == np.float32(0.1)


def test_untracked_tensor_with_rank_dependent_shape_is_an_error(tmp_path):
    lay = TensorLayout([2], [0], [4])
    save(str(tmp_path / "src/rank_0/a.ckpt"), {"w": np.zeros(2, np.float32),
                                               "odd": np.zeros(3, np.float32)})
    save(str(tmp_path / "src/rank_1/a.ckpt"), {"w": np.zeros(2, np.float32),
                                               "odd": np.zeros(2, np.float32)})
    write_strategy(str(tmp_path / "s.ckpt"), {"w": lay})
    with pytest.raises(TransformError, match=r"'odd' is not in the source strategy.*rank 0 "
                                             r"\(.*rank_0/a.ckpt\): \[3\], rank 1"):
        transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "o"), "x",
                              str(tmp_path / "s.ckpt"))


def test_dash_in_names_is_kept(tmp_path):
    model = {"layer-1.w": np.arange(8, dtype=np.float32).reshape(4, 2)}
    src = {"layer-1.w": TensorLayout([2], [0, -1], [4, 2])}
    make_run(tmp_path, src, model)
    transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "o"), "x",
                          str(tmp_path / "src.ckpt"))
    np.testing.assert_array_equal(load(str(tmp_path / "o/rank_0/x0.ckpt"))["layer-1.w"],
                                  model["layer-1.w"])


def test_newest_file_in_a_rank_dir_by_numbers(tmp_path):
    for r in range(2):
        for step, val in ((9, 1.0), (10, 2.0)):
            save(str(tmp_path / f"src/rank_{r}/net-1_{step}.ckpt"),
                 {"w": np.full(2, val, np.float32)})
    files, fmt = collect_rank_files(str(tmp_path / "src"))
    assert fmt == "ckpt" and all(p.endswith("net-1_10.ckpt") for p in files.values())


def test_mixed_formats_and_empty_dirs_are_refused(tmp_path):
    save(str(tmp_path / "src/rank_0/a.ckpt"), {"w": np.zeros(2, np.float32)})
    save(str(tmp_path / "src/rank_1/a.safetensors"), {"w": np.zeros(2, np.float32)},
         "safetensors")
    with pytest.raises(ValueError, match="both ckpt file and safetensors"):
        collect_rank_files(str(tmp_path / "src"))
    os.makedirs(tmp_path / "empty/rank_0")
    with pytest.raises(ValueError, match="can not be empty"):
        collect_rank_files(str(tmp_path / "empty"))
    with pytest.raises(NotADirectoryError):
        collect_rank_files(str(tmp_path / "nope"))


def test_missing_rank_file_is_named(tmp_path):
    model = C.full_model()
    make_run(tmp_path, C.CASES["2x2_to_1"][0], model)
    import shutil
    shutil.rmtree(tmp_path / "src" / "rank_1")
    with pytest.raises(ValueError, match="rank1 is needed for converting rank0"):
        transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "o"), "x",
                              str(tmp_path / "src.ckpt"))


def test_wrong_strategy_for_the_files_names_param_rank_and_fix(tmp_path):
    save(str(tmp_path / "src/rank_0/a.ckpt"), {"w": np.zeros((3, 2), np.float32)})
    save(str(tmp_path / "src/rank_1/a.ckpt"), {"w": np.zeros((2, 2), np.float32)})
    write_strategy(str(tmp_path / "s.ckpt"), {"w": TensorLayout([2], [0, -1], [4, 2])})
    with pytest.raises(TransformError, match=r"'w' has shape \[2, 2\] in the source file of "
                                             r"rank 1 \(.*rank_1/a.ckpt\).*\[3, 2\].*"
                                             r"strategy file belongs"):
        transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "o"), "x",
                              str(tmp_path / "s.ckpt"))


def test_safetensors_to_safetensors_bf16_kept_and_progress(tmp_path):
    full = (np.arange(64, dtype=np.float32).reshape(8, 8) / 7).astype(ml_dtypes.bfloat16)
    src = {"w": TensorLayout([2, 2], [1, 0], [8, 8])}
    make_run(tmp_path, src, {"w": full}, fmt="safetensors")
    dst = {"w": TensorLayout([4], [0, -1], [8, 8])}
    write_strategy(str(tmp_path / "d.ckpt"), dst)
    events = []
    transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "o"), "x",
                          str(tmp_path / "src.ckpt"), str(tmp_path / "d.ckpt"),
                          output_format="safetensors", progress=events.append)
    check_out(tmp_path / "o", "x", dst, {"w": full}, fmt="safetensors")
    got = ms.load_checkpoint(str(tmp_path / "o/rank_0/x0.safetensors"), format="safetensors")
    assert got["w"].dtype == ms.bfloat16
    assert [e.rank for e in events] == [0, 1, 2, 3]
    assert events[-1].params_done == events[-1].params_total == 1
    assert events[-1].bytes_done == events[-1].bytes_total == 2 * 8 * 2


def test_by_rank_tools(tmp_path):
    model = C.full_model()
    src, dst = C.CASES["2x4_to_2"]
    make_run(tmp_path, src, model)
    write_strategy(str(tmp_path / "d.ckpt"), dst)
    s, d = str(tmp_path / "src.ckpt"), str(tmp_path / "d.ckpt")
    for r in range(2):
        need = rank_list_for_transform(r, s, d)
        assert need == sorted(need, reverse=True) and all(type(x) is int for x in need)
        files = {n: str(tmp_path / f"src/rank_{n}/net-1_1.ckpt") for n in need}
        transform_checkpoint_by_rank(r, files, str(tmp_path / f"o/rank_{r}/y{r}.ckpt"), s, d)
    check_out(tmp_path / "o", "y", dst, model)
    with pytest.raises(ValueError, match="should end with .ckpt"):
        transform_checkpoint_by_rank(0, files, str(tmp_path / "x.safetensors"), s, d)
    with pytest.raises(ValueError, match="Rank 5 is not in the destination"):
        rank_list_for_transform(5, s, d)
    with pytest.raises(TypeError):
        rank_list_for_transform("0", s, d)
    assert rank_list_for_transform(3, None, d) == [0]
    with pytest.raises(ValueError, match="should end with .safetensors"):
        transform_safetensors_by_rank(0, files, str(tmp_path / "x.ckpt"), s, d)


def test_argument_checks(tmp_path):
    with pytest.raises(ValueError, match="output_format"):
        transform_checkpoints(str(tmp_path), str(tmp_path / "o"), "x", output_format="npz")
    with pytest.raises(TypeError, match="ckpt_prefix"):
        transform_checkpoints(str(tmp_path), str(tmp_path / "o"), 3)
    with pytest.raises(ValueError, match="plain file-name prefix"):
        transform_checkpoints(str(tmp_path), str(tmp_path / "o"), "../x")
    with pytest.raises(TypeError, match="dict"):
        transform_checkpoint_by_rank(0, [], "a.ckpt")
    with pytest.raises(ValueError, match="not exits"):
        transform_checkpoint_by_rank(0, {0: str(tmp_path / "none.ckpt")}, "a.ckpt")


def test_process_num_threads_give_the_same_files(tmp_path):
    model = C.full_model()
    src, dst = C.CASES["2_to_2x2"]
    make_run(tmp_path, src, model)
    write_strategy(str(tmp_path / "d.ckpt"), dst)
    transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "o"), "x",
                          str(tmp_path / "src.ckpt"), str(tmp_path / "d.ckpt"), process_num=3)
    check_out(tmp_path / "o", "x", dst, model)


def test_untracked_tensor_sliced_evenly_is_an_error_not_a_wrong_copy(tmp_path):
    # same shape on every rank but different values: a slice, not a replica
    lay = TensorLayout([2], [0], [4])
    for r in range(2):
        save(str(tmp_path / f"src/rank_{r}/a.ckpt"),
             {"w": np.zeros(2, np.float32), "m_w": np.full(2, r, np.float32),
              "step": np.array(r, np.int32)})
    write_strategy(str(tmp_path / "s.ckpt"), {"w": lay})
    with pytest.raises(TransformError, match=r"'m_w' is not in the source strategy file and "
                                             r"its values differ between rank 0"):
        transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "o"), "x",
                              str(tmp_path / "s.ckpt"))


def test_untracked_scalars_may_differ_and_come_from_the_lowest_rank(tmp_path):
    lay = TensorLayout([2], [0], [4])
    for r in range(2):
        save(str(tmp_path / f"src/rank_{r}/a.ckpt"),
             {"w": np.full(2, r, np.float32), "step": np.array(10 + r, np.int32),
              "lr": np.full(3, 0.5, np.float32)})
    write_strategy(str(tmp_path / "s.ckpt"), {"w": lay})
    transform_checkpoints(str(tmp_path / "src"), str(tmp_path / "o"), "x",
                          str(tmp_path / "s.ckpt"))
    got = load(str(tmp_path / "o/rank_0/x0.ckpt"))
    assert int(got["step"]) == 10 and got["lr"].tolist() == [0.5] * 3
    assert got["w"].tolist() == [0, 0, 1, 1]
