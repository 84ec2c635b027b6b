"""Strategy files: our codec against protobuf, JSON, strict validation, MindSpore's helpers."""

from __future__ import annotations

import json
import os

import pytest

from mindckpt.errors import FormatError
from mindckpt.parallel.layout import TensorLayout
from mindckpt.parallel.strategy import (
    ParallelLayouts,
    build_searched_strategy,
    decode_strategy,
    encode_group_info,
    encode_strategy,
    load_layout_map,
    merge_pipeline_strategys,
    read_strategy,
    restore_group_info_list,
    write_strategy,
)

from _proto_schema import PB  # noqa: E402  (tests/parallel is on sys.path via conftest)

LAYOUTS = {
    "w": TensorLayout([2, 2], [1, 0], [4, 4]),
    "b": TensorLayout([2, 2], [-1], [4]),
    "emb": TensorLayout([2, 2], [(1, 0), -1], [8, 3]),
    "v": TensorLayout([2, 2], [(1, 0)], [8]),
    "m": TensorLayout([4, 2], [-1, 0], [8, 4], opt_shard_size=2, opt_shard_step=2),
    "u": TensorLayout([3], [0, -1], [7, 2], param_split_shape=[3, 2, 2]),
    "s": TensorLayout([2, 2], [], []),
}


def pb_strategy(layouts: dict, stage: int = 0):
    smap = PB["ParallelStrategyMap"](current_stage=stage)
    item = smap.parallel_strategy_item.add(node_name="Default/MatMul-op0")
    item.parallel_strategys.stage = stage
    item.parallel_strategys.parallel_strategy.add().dim.extend([2, 2])
    for name, lay in layouts.items():
        li = smap.parallel_layout_item.add(param_name=name)
        pl = li.parallel_layouts
        pl.dev_matrix.add().dim.extend(lay.dev_matrix)
        if lay.is_nested:
            for e in lay.tensor_map:
                pl.tensor_map.add().dim.extend(e if isinstance(e, tuple) else [e])
            if len(lay.tensor_map) == 1:
                pl.tensor_map.add()
        else:
            pl.tensor_map.add().dim.extend(lay.tensor_map)
        pl.param_split_shape.add().dim.extend(lay.param_split_shape)
        pl.indices_offset.add()
        pl.field = 0
        pl.opt_weight_shard_step = lay.opt_shard_step
        pl.opt_weight_shard_size = lay.opt_shard_size
    return smap


def test_decode_matches_protobuf_and_encode_is_byte_identical(tmp_path):
    msg = pb_strategy(LAYOUTS)
    data = msg.SerializeToString()
    smap = decode_strategy(data, "x.ckpt")
    assert smap.current_stage == 0
    assert smap.strategy_items[0].node_name == "Default/MatMul-op0"
    assert smap.strategy_items[0].strategies == [[2, 2]]
    assert list(smap.layouts) == list(LAYOUTS)
    for name, lay in LAYOUTS.items():
        got = smap.layouts[name]
        assert got == ParallelLayouts.from_layout(lay)
        assert tuple(got.map_entries()) == lay.tensor_map
    assert encode_strategy(smap) == data
    back = PB["ParallelStrategyMap"]()
    back.ParseFromString(encode_strategy(smap))
    assert back == msg


def test_negative_tensor_map_values_are_ten_byte_varints():
    lay = ParallelLayouts.from_layout(TensorLayout([2], [-1, 0], [2, 2]))
    from mindckpt.parallel.strategy import StrategyMap
    data = encode_strategy(StrategyMap(0, [], {"w": lay}))
    assert b"\x08" + b"\xff" * 9 + b"\x01" in data
    pb = PB["ParallelStrategyMap"]()
    pb.ParseFromString(data)
    assert list(pb.parallel_layout_item[0].parallel_layouts.tensor_map[0].dim) == [-1, 0]


def test_packed_repeated_fields_are_read(tmp_path):
    pl = PB["ParallelLayouts"](field=0, opt_weight_shard_step=0, opt_weight_shard_size=0)
    pl.dev_matrix.add().dim.extend([2, 4])
    pl.tensor_map.add().dim.extend([1, -1])
    data = pl.SerializeToString()
    # rewrite dev_matrix's dims packed: 0a <len> 0a 02 02 04
    packed = data.replace(b"\x0a\x04\x08\x02\x08\x04", b"\x0a\x04\x0a\x02\x02\x04")
    assert packed != data
    top = b"\x08\x00" + b"\x1a" + bytes([len(packed) + 5]) + b"\x0a\x01w\x12" + \
        bytes([len(packed)]) + packed
    assert decode_strategy(top).layouts["w"].dev_matrix[0].dim == [2, 4]


def test_file_round_trip_and_mindspore_field_access(tmp_path):
    path = str(tmp_path / "strategy.ckpt")
    write_strategy(path, LAYOUTS)
    s = build_searched_strategy(path)
    assert s["w"].dev_matrix[0].dim == [2, 2]
    assert s["w"].tensor_map[0].dim == [1, 0]
    assert s["emb"].tensor_map[0].dim == [1, 0] and s["emb"].tensor_map[1].dim == [-1]
    assert [t.dim for t in s["v"].tensor_map] == [[1, 0], []]
    assert s["u"].param_split_shape[0].dim == [3, 2, 2]
    assert (s["m"].field, s["m"].opt_weight_shard_step, s["m"].opt_weight_shard_size) == (0, 2, 2)
    pb = PB["ParallelStrategyMap"]()
    with open(path, "rb") as f:
        pb.ParseFromString(f.read())
    assert pb.IsInitialized()  # every required field is present
    assert build_searched_strategy(None) is None


def test_json_variant_round_trip(tmp_path):
    path = str(tmp_path / "strategy.json")
    write_strategy(path, LAYOUTS)
    doc = json.load(open(path))
    assert doc["parallel_layout_item"]["emb"]["tensor_map"] == [[1, 0], -1]
    assert doc["parallel_layout_item"]["w"]["tensor_map"] == [1, 0]
    pb_path = str(tmp_path / "strategy.ckpt")
    write_strategy(pb_path, LAYOUTS)
    assert read_strategy(path).layouts == read_strategy(pb_path).layouts


@pytest.mark.parametrize("drop", ["field", "opt_weight_shard_step", "opt_weight_shard_size"])
def test_missing_required_layout_field_is_an_error_naming_file_and_param(tmp_path, drop):
    msg = pb_strategy({"w": LAYOUTS["w"]})
    msg.parallel_layout_item[0].parallel_layouts.ClearField(drop)
    data = msg.SerializePartialToString()
    path = tmp_path / "bad.ckpt"
    path.write_bytes(data)
    with pytest.raises(FormatError, match=rf"bad\.ckpt.*parameter 'w' {drop} is missing"):
        build_searched_strategy(str(path))


def test_missing_required_json_field(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"parallel_layout_item": {"w": {"dev_matrix": [2],
                                                               "tensor_map": [0]}}}))
    with pytest.raises(FormatError, match=r"s\.json.*'w' lacks required"):
        build_searched_strategy(str(path))


def test_missing_current_stage(tmp_path):
    msg = pb_strategy({"w": LAYOUTS["w"]})
    msg.ClearField("current_stage")
    path = tmp_path / "s.ckpt"
    path.write_bytes(msg.SerializePartialToString())
    with pytest.raises(FormatError, match="current_stage is missing"):
        build_searched_strategy(str(path))


def test_garbage_raises_format_error():
    with pytest.raises(FormatError):
        decode_strategy(b"\xff" * 20, "g.ckpt")
    with pytest.raises(FormatError, match="claims"):
        decode_strategy(b"\x08\x00\x1a\xff\xff\xff\x7f", "g.ckpt")


def test_truncations_never_raise_other_errors():
    data = pb_strategy(LAYOUTS).SerializeToString()
    for cut in range(len(data)):
        try:
            decode_strategy(data[:cut], "t")
        except FormatError:
            pass


def test_file_errors_like_mindspore(tmp_path):
    with pytest.raises(TypeError):
        build_searched_strategy(3)
    with pytest.raises(ValueError, match="no such strategy file"):
        build_searched_strategy(str(tmp_path / "none.ckpt"))
    (tmp_path / "e.ckpt").write_bytes(b"")
    with pytest.raises(ValueError, match="should not be empty"):
        build_searched_strategy(str(tmp_path / "e.ckpt"))


def test_merge_pipeline_strategys_prefixes_stages(tmp_path):
    src = tmp_path / "stra"
    for stage, rank in ((0, 0), (0, 1), (1, 2), (1, 3)):
        msg = pb_strategy({"w": TensorLayout([2], [0, -1], [4, 2])} if stage == 0 else
                          {"v": TensorLayout([2], [-1, 0], [4, 2])}, stage=stage)
        os.makedirs(src, exist_ok=True)
        (src / f"strategy_{rank}.ckpt").write_bytes(msg.SerializeToString())
    dst = str(tmp_path / "out" / "merged.ckpt")
    merge_pipeline_strategys(str(src), dst)
    smap = read_strategy(dst)
    assert smap.current_stage == 1
    assert sorted(smap.layouts) == ["0-w", "1-v"]
    lm = load_layout_map(dst)
    assert lm["w"].stages == (0,) and lm["v"].stages == (1,)
    with pytest.raises(NotADirectoryError):
        merge_pipeline_strategys(str(tmp_path / "nope"), dst)


def test_write_strategy_with_stages_writes_a_merged_file(tmp_path):
    path = str(tmp_path / "pp.ckpt")
    write_strategy(path, {"w": TensorLayout([2], [0], [4], stages=[0]),
                          "e": TensorLayout([2], [-1], [4], stages=[0, 1]),
                          "v": TensorLayout([2], [0], [4], stages=[1])})
    smap = read_strategy(path)
    assert smap.current_stage == 1
    assert sorted(smap.layouts) == ["0-e", "0-w", "1-e", "1-v"]
    lm = load_layout_map(path)
    assert lm["e"].stages == (0, 1)


def test_dash_in_a_parameter_name_is_not_a_stage_prefix(tmp_path):
    path = str(tmp_path / "s.ckpt")
    write_strategy(path, {"layer-1.w": TensorLayout([2], [0], [4])})
    lm = load_layout_map(path)
    assert list(lm) == ["layer-1.w"] and lm["layer-1.w"].stages == (0,)


def test_restore_group_info_list(tmp_path):
    path = tmp_path / "group_info.pb"
    path.write_bytes(encode_group_info([0, 2, 4], {"hccl_world_group": [0, 1, 2, 3]}))
    assert restore_group_info_list(str(path)) == [0, 2, 4]
    pb = PB["ParallelGroupMap"]()
    pb.ParseFromString(path.read_bytes())
    assert list(pb.ckpt_restore_rank_list.dim) == [0, 2, 4]
    assert pb.parallel_group_item[0].group_name == "hccl_world_group"
    (tmp_path / "bad.pb").write_bytes(b"\x12\x05\x08")
    with pytest.raises(FormatError, match="bad.pb"):
        restore_group_info_list(str(tmp_path / "bad.pb"))
    (tmp_path / "norestore.pb").write_bytes(encode_group_info([], {}))
    with pytest.raises(ValueError, match="no restore rank list"):
        restore_group_info_list(str(tmp_path / "norestore.pb"))
    with pytest.raises(TypeError):
        restore_group_info_list(1)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_format_error(data):
    try:
        decode_strategy(data, "fuzz.ckpt")
    except FormatError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255))
def test_flipped_bytes_raise_only_format_error(pos, value):
    data = bytearray(pb_strategy(LAYOUTS).SerializeToString())
    data[pos % len(data)] = value
    try:
        smap = decode_strategy(bytes(data), "flip.ckpt")
        load_layout_map(dict(smap.layouts))  # whatever parsed is usable or a FormatError
    except FormatError:
        pass
