"""Single-process pieces of the distributed save/load: directory naming, byte-balanced owners,
the index codec against hostile input, the read planner's coverage check, world size 1."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mindckpt
from mindckpt.errors import CheckpointNotFoundError, FormatError
from mindckpt.parallel._index import Chunk, ParamEntry, decode_index
from mindckpt.parallel.layout import TensorLayout
from mindckpt.parallel.load import load_distributed, plan_reads, read_shards
from mindckpt.parallel.save import assign_owners, checkpoint_directory, save_distributed

torch = pytest.importorskip("torch")


def test_checkpoint_directory_forms():
    assert checkpoint_directory("/ck/step100.ckpt", 3, "ckpt") == \
        ("/ck/step100", "rank_{r}/step100.ckpt")
    assert checkpoint_directory("/ck/rank_2/net-1_5", 2, "safetensors") == \
        ("/ck", "rank_{r}/net-1_5.safetensors")
    with pytest.raises(ValueError, match="directory of rank 1"):
        checkpoint_directory("/ck/rank_1/net", 0, "ckpt")


class _It:
    def __init__(self, name, layout, itemsize=4):
        self.name, self.layout = name, layout
        self.type = type("T", (), {"itemsize": itemsize})()


def test_owners_balance_bytes_not_counts():
    # 4 ranks, dp=4: every parameter replicated on all ranks; one big and three small
    items = [_It("big", TensorLayout.replicated((1000,), 4)),
             *[_It(f"s{i}", TensorLayout.replicated((10,), 4)) for i in range(3)]]
    owners = assign_owners(items, 4)
    assert owners[("big", ((0, 1000),))] == 0
    assert sorted(owners[(f"s{i}", ((0, 10),))] for i in range(3)) == [1, 2, 3]
    # a TP x DP layout: each slice goes to a member of its replica set
    lay = TensorLayout((2, 2), (0, -1), (8, 4))
    own = assign_owners([_It("w", lay)], 4)
    for box, members in lay.distinct_boxes():
        assert own[("w", box)] in members


@pytest.mark.parametrize("doc,match", [
    (b"\xff", "not JSON"),
    (b"[]", "not an object"),
    (json.dumps({"version": 9}).encode(), "version"),
    (json.dumps({"version": 1, "world_size": 1, "files": ["../x"], "params": {}}).encode(),
     "outside"),
    (json.dumps({"version": 1, "world_size": 1, "files": ["a"], "params": {"w": {
        "dtype": "Float32", "full_shape": [4], "layout": None,
        "chunks": [{"file": 0, "box": [[0, 9]]}]}}}).encode(), "outside its shape"),
    (json.dumps({"version": 1, "world_size": 1, "files": ["a"], "params": {"w": {
        "dtype": "Float32", "full_shape": [4], "layout": None,
        "chunks": [{"file": 5, "box": [[0, 4]]}]}}}).encode(), "valid file"),
    (json.dumps({"version": 1, "world_size": 1, "files": [], "params": {"w": {
        "dtype": "Nope", "full_shape": [4], "chunks": []}}}).encode(), "unknown dtype"),
    (json.dumps({"version": 1, "world_size": 1, "files": [], "params": {"w": {
        "dtype": "Float32", "full_shape": [4], "layout": {"dev_matrix": [2],
                                                          "tensor_map": [3]},
        "chunks": []}}}).encode(), "bad layout"),
])
def test_hostile_index(doc, match):
    with pytest.raises(FormatError, match=match):
        decode_index(doc, "idx")


def test_plan_reads_refuses_gaps_and_spreads_replicas():
    e = ParamEntry("w", "Float32", (8,), None, [Chunk("a", ((0, 4),))])
    with pytest.raises(FormatError, match="cover 4 of the 8"):
        plan_reads(e, ((0, 8),), 0)
    e = ParamEntry("w", "Float32", (8,), None, [Chunk("a", ((0, 8),)), Chunk("b", ((0, 8),))])
    assert plan_reads(e, ((2, 6),), 0)[0][0].file == "a"
    assert plan_reads(e, ((2, 6),), 1)[0][0].file == "b"


def test_world_size_one_without_a_group(tmp_path):
    sd = {"w": torch.arange(24.0).reshape(4, 6), "n": torch.tensor(3)}
    lay = {"w": ([1], [0, -1])}  # MindSpore-style (dev_matrix, tensor_map)
    save_distributed(sd, str(tmp_path / "f"), layouts=lay)
    mindckpt.save_checkpoint(sd, str(tmp_path / "g"))
    assert (tmp_path / "f.ckpt").read_bytes() == (tmp_path / "g.ckpt").read_bytes()
    save_distributed(sd, str(tmp_path / "d"), layouts=lay, integrated_save=False)
    target = {"w": torch.zeros(4, 6), "n": torch.tensor(0)}
    res = load_distributed(str(tmp_path / "d"), target, layouts=lay)
    assert list(res) == [[], []] and torch.equal(target["w"], sd["w"])
    half = read_shards(str(tmp_path / "d"), {"w": TensorLayout((2,), (-1, 0), (4, 6))}, 1)
    np.testing.assert_array_equal(half["w"], sd["w"].numpy()[:, 3:])


def test_uncommitted_directory_is_refused(tmp_path):
    sd = {"w": torch.ones(4)}
    save_distributed(sd, str(tmp_path / "d"), integrated_save=False)
    (tmp_path / "d" / "mindckpt.commit").unlink()
    with pytest.raises(CheckpointNotFoundError, match="not a committed checkpoint"):
        load_distributed(str(tmp_path / "d"), {"w": torch.zeros(4)})


def test_bad_inputs(tmp_path):
    sd = {"w": torch.ones(4, 4)}
    with pytest.raises(ValueError, match="layouts were given"):
        save_distributed(sd, str(tmp_path / "x"), layouts={"v": ([1], [0])})
    with pytest.raises(Exception, match="local shape"):
        save_distributed(sd, str(tmp_path / "x"),
                         layouts={"w": TensorLayout((1,), (0, -1), (8, 4))})
    with pytest.raises(ValueError, match="writer_rank applies to integrated_save=True"):
        save_distributed(sd, str(tmp_path / "x"), integrated_save=False, writer_rank=0)
    with pytest.raises(ValueError, match="forked writer process"):
        save_distributed(sd, str(tmp_path / "x"), async_save="process")
    save_distributed(sd, str(tmp_path / "y"), integrated_save=False)
    with pytest.raises(RuntimeError, match="same shape"):
        load_distributed(str(tmp_path / "y"), {"w": torch.zeros(4, 5)})


@pytest.mark.parametrize("writer", [None, 0])
def test_integrated_safetensors_crc_gathers_each_parameter_twice(tmp_path, monkeypatch, writer):
    from mindckpt.parallel import save as S

    sd = {"w": torch.arange(24.0).reshape(4, 6), "b": torch.ones(6, dtype=torch.bfloat16),
          "n": torch.tensor(3), "z": torch.zeros(0, 2)}
    lay = {"w": ([1], [0, -1]), "b": ([1], [-1])}
    counts: dict[str, int] = {}
    real = S._Gatherer.gather

    def counting(self, it):
        counts[it.name] = counts.get(it.name, 0) + 1
        return real(self, it)
    monkeypatch.setattr(S._Gatherer, "gather", counting)
    save_distributed(sd, str(tmp_path / "f"), layouts=lay, format="safetensors", crc_check=True,
                     writer_rank=writer)
    assert counts == {"w": 2, "b": 2, "n": 2, "z": 2}
    counts.clear()
    save_distributed(sd, str(tmp_path / "p"), layouts=lay, format="safetensors")
    assert counts == {"w": 1, "b": 1, "n": 1, "z": 1}
    for name in ("f", "p"):  # byte for byte what a plain save of the same values writes
        mindckpt.save_checkpoint(sd, str(tmp_path / f"ref_{name}"), format="safetensors",
                                 crc_check=name == "f")
        assert (tmp_path / f"{name}.safetensors").read_bytes() == \
            (tmp_path / f"ref_{name}.safetensors").read_bytes()
