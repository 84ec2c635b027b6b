"""merge_sliced_parameter, unified_safetensors and the loaders, without MindSpore."""

from __future__ import annotations

import json
import os

import ml_dtypes
import numpy as np
import pytest

import mindckpt as ms
from mindckpt.parallel import (
    build_searched_strategy,
    get_ckpt_path_with_strategy,
    load_distributed_checkpoint,
    load_segmented_checkpoints,
    merge_sliced_parameter,
    unified_safetensors,
    write_strategy,
)
from mindckpt.parallel.layout import TensorLayout

import _cases as C  # noqa: E402
from test_transform import load, make_run, save, sl  # noqa: E402


def params(full, lay, name="p"):
    return [ms.Parameter(ms.Tensor(np.ascontiguousarray(sl(full, lay.box(r)))), name)
            for r in range(lay.device_num)]


def strategy(tmp_path, lays):
    p = str(tmp_path / "s.ckpt")
    write_strategy(p, lays)
    return build_searched_strategy(p)


@pytest.mark.parametrize("lay", [
    TensorLayout([2, 2], [1, 0], [4, 6], name="p"),
    TensorLayout([2, 2], [-1, 0], [4, 6], name="p"),
    TensorLayout([2, 2], [(1, 0), -1], [8, 6], name="p"),
    TensorLayout([2, 2, 2], [2, 0], [4, 4], name="p"),
    TensorLayout([4, 2], [-1, 0], [8, 4], opt_shard_size=2, opt_shard_step=2, name="p"),
])
def test_merge_sliced_parameter_with_strategy(tmp_path, lay):
    full = np.arange(np.prod(lay.full_shape), dtype=np.float32).reshape(lay.full_shape)
    got = merge_sliced_parameter(params(full, lay), strategy(tmp_path, {"p": lay}))
    assert got.name == "p"
    np.testing.assert_array_equal(got.asnumpy(), full)


def test_merge_uneven_and_bf16(tmp_path):
    lay = TensorLayout([3], [0, -1], [7, 2], param_split_shape=[3, 2, 2], name="p")
    full = np.arange(14, dtype=np.float32).reshape(7, 2).astype(ml_dtypes.bfloat16)
    got = merge_sliced_parameter(params(full, lay), strategy(tmp_path, {"p": lay}))
    assert got.dtype == ms.bfloat16
    np.testing.assert_array_equal(got.asnumpy(), full)


def test_merge_without_strategy_concatenates_like_mindspore():
    parts = [ms.Parameter(ms.Tensor(np.full((1, 2), i, np.float32)), "e") for i in range(3)]
    got = merge_sliced_parameter(parts)
    assert got.shape == (3, 2) and got.asnumpy()[2, 0] == 2


def test_merge_errors(tmp_path):
    lay = TensorLayout([2], [0], [4], name="p")
    s = strategy(tmp_path, {"p": lay})
    full = np.arange(4, dtype=np.float32)
    with pytest.raises(TypeError):
        merge_sliced_parameter(tuple(params(full, lay)), s)
    with pytest.raises(ValueError, match="should not be empty"):
        merge_sliced_parameter([], s)
    with pytest.raises(ValueError, match="device_count is 2"):
        merge_sliced_parameter(params(full, lay)[:1], s)
    with pytest.raises(KeyError):
        merge_sliced_parameter([ms.Parameter(ms.Tensor(full), "q")], s)
    mixed = [ms.Parameter(ms.Tensor(np.zeros((2, 2), np.float32)), "p"),
             ms.Parameter(ms.Tensor(np.zeros((2, 3), np.float32)), "p")]
    with pytest.raises(ValueError, match="same name, dimension length and shape"):
        merge_sliced_parameter(mixed, s)
    with pytest.raises(TypeError):
        merge_sliced_parameter([np.zeros(2)], s)


def _unified(tmp_path, fmt="safetensors", **kw):
    model = C.full_model()
    src = C.CASES["2x2_to_1"][0]
    make_run(tmp_path, src, model, fmt=fmt,
             extra={r: {"global_step": np.array(42, np.int32)} for r in range(4)})
    unified_safetensors(str(tmp_path / "src"), str(tmp_path / "src.ckpt"),
                        str(tmp_path / "uni"), **kw)
    return model


def test_unified_safetensors_layout(tmp_path):
    model = _unified(tmp_path)
    files = sorted(os.listdir(tmp_path / "uni"))
    assert files == ["hyper_param.safetensors", "param_name_map.json", "part0.safetensors"]
    doc = json.load(open(tmp_path / "uni" / "param_name_map.json"))
    assert doc["metadata"]["total_size"] == sum(a.nbytes for a in model.values())
    assert doc["weight_map"] == {n: "part0.safetensors" for n in
                                 sorted(model, key=lambda n: -model[n].nbytes)}
    got = load(str(tmp_path / "uni" / "part0.safetensors"))
    for n, a in model.items():
        np.testing.assert_array_equal(got[n], a)
    assert int(load(str(tmp_path / "uni" / "hyper_param.safetensors"))["global_step"]) == 42


def test_unified_choice_func_drops_everywhere_and_renames(tmp_path):
    def choice(n):
        if n in ("b", "global_step"):
            return False
        return "net." + n if n == "w" else True

    _unified(tmp_path, choice_func=choice)
    got = load(str(tmp_path / "uni" / "part0.safetensors"))
    assert sorted(got) == ["emb", "net.w", "v"]
    assert not os.path.exists(tmp_path / "uni" / "hyper_param.safetensors")
    doc = json.load(open(tmp_path / "uni" / "param_name_map.json"))
    assert "b" not in doc["weight_map"] and "net.w" in doc["weight_map"]


def test_unified_split_parts_and_machines(tmp_path, monkeypatch):
    import mindckpt.parallel.unified as U
    monkeypatch.setattr(U, "PART_BYTES", 400)  # 4 tensors of 512/64/256/256 bytes -> 3 parts
    model = _unified(tmp_path, split_dst_file=(2, 2))
    # machine 2 of 2 writes only its share, no map / hyper file
    assert sorted(os.listdir(tmp_path / "uni")) == ["part2.safetensors"]
    unified_safetensors(str(tmp_path / "src"), str(tmp_path / "src.ckpt"), str(tmp_path / "uni"),
                        split_dst_file=(1, 2))
    doc = json.load(open(tmp_path / "uni" / "param_name_map.json"))
    for n, part in doc["weight_map"].items():
        np.testing.assert_array_equal(load(str(tmp_path / "uni" / part))[n], model[n])
    with pytest.raises(ValueError, match="split_dst_file"):
        unified_safetensors(str(tmp_path / "src"), str(tmp_path / "src.ckpt"), "x",
                            split_dst_file=(3, 2))


def test_load_distributed_checkpoint_from_unified(tmp_path):
    model = _unified(tmp_path)
    dst = C.CASES["2x2_to_2"][1]
    write_strategy(str(tmp_path / "d.ckpt"), dst)
    assert load_distributed_checkpoint(None, predict_strategy=str(tmp_path / "d.ckpt"),
                                       format="safetensors",
                                       unified_safetensors_dir=str(tmp_path / "uni"),
                                       dst_safetensors_dir=str(tmp_path / "per"))
    for r in range(2):
        got = load(str(tmp_path / "per" / f"rank_{r}" / "net.safetensors"))
        assert list(got)[:0] == []
        for n, a in model.items():
            np.testing.assert_array_equal(got[n], sl(a, dst[n].box(r)))
        assert int(got["global_step"]) == 42
    with pytest.raises(ValueError, match="dst_safetensors_dir"):
        load_distributed_checkpoint(None, format="safetensors",
                                    unified_safetensors_dir=str(tmp_path / "uni"))
    with pytest.raises(ValueError, match="checkpoint_filenames must be None"):
        load_distributed_checkpoint(None, ["a"], format="safetensors",
                                    unified_safetensors_dir=str(tmp_path / "uni"))


class _Net(ms.nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = ms.Parameter(ms.Tensor(np.zeros((8, 16), np.float32)), "w")
        self.b = ms.Parameter(ms.Tensor(np.zeros((16,), np.float32)), "b")


def test_load_distributed_checkpoint_ckpt_into_a_net(tmp_path):
    model = C.full_model()
    src = C.CASES["2x2_to_1"][0]
    make_run(tmp_path, src, model,
             extra={r: {"global_step": np.array(42, np.int32)} for r in range(4)})
    files = [str(tmp_path / f"src/rank_{r}/net-1_1.ckpt") for r in range(4)]
    net = _Net()
    load_distributed_checkpoint(net, files, None, str(tmp_path / "src.ckpt"))
    np.testing.assert_array_equal(net.w.asnumpy(), model["w"])
    net2 = _Net()
    net2.w = ms.Parameter(ms.Tensor(np.zeros((4, 16), np.float32)), "w")
    load_distributed_checkpoint(net2, files, {"w": [[2], [0, -1]]}, str(tmp_path / "src.ckpt"),
                                rank_id=1)
    np.testing.assert_array_equal(net2.w.asnumpy(), model["w"][4:])
    with pytest.raises(ValueError, match="device count"):
        load_distributed_checkpoint(_Net(), files[:2], None, str(tmp_path / "src.ckpt"))
    with pytest.raises(ValueError, match="train_strategy_filename"):
        load_distributed_checkpoint(_Net(), files)
    with pytest.raises(NotImplementedError, match="optimizer-shard group"):
        load_distributed_checkpoint(_Net(), files, {"w": [[2], [0, -1], [], 0, 0, "g"]},
                                    str(tmp_path / "src.ckpt"))


def test_load_segmented_checkpoints(tmp_path):
    save(str(tmp_path / "seg" / "a.ckpt"), {"x": np.ones(2, np.float32)})
    save(str(tmp_path / "seg" / "b.ckpt"), {"y": np.zeros(3, np.float32)})
    got = load_segmented_checkpoints(str(tmp_path / "seg"))
    assert sorted(got) == ["x", "y"]
    with pytest.raises(ValueError):
        load_segmented_checkpoints(str(tmp_path / "none"))
    with pytest.raises(TypeError):
        load_segmented_checkpoints(1)


def test_get_ckpt_path_with_strategy(tmp_path):
    lay = {"w": TensorLayout([2, 2], [-1, 0], [4, 4])}  # dp replicas: (0, 2), (1, 3)
    write_strategy(str(tmp_path / "s.ckpt"), lay)
    save(str(tmp_path / "rank_2" / "net.ckpt"), {"w": np.zeros((4, 2), np.float32)})
    own = str(tmp_path / "rank_0" / "net.ckpt")
    assert get_ckpt_path_with_strategy(own, str(tmp_path / "s.ckpt"), rank_id=0) == \
        str(tmp_path / "rank_2" / "net.ckpt")
    assert get_ckpt_path_with_strategy(str(tmp_path / "rank_1" / "net.ckpt"),
                                       str(tmp_path / "s.ckpt"), rank_id=1) is None
    assert get_ckpt_path_with_strategy(str(tmp_path / "rank_2" / "net.ckpt"),
                                       str(tmp_path / "s.ckpt"), rank_id=2).endswith(
        "rank_2/net.ckpt")
