"""ckpt_to_safetensors / safetensors_to_ckpt: MindSpore's checks, names and layouts."""

from __future__ import annotations

import os

import numpy as np
import pytest

import mindckpt as ms


def _save(path, **extra):
    ms.save_checkpoint({"b": ms.Parameter(np.ones(2, np.float32)),
                        "a": ms.Parameter(np.arange(3, dtype=np.int64)), **extra}, path)


def test_single_file_both_ways_with_name_map(tmp_cwd):
    _save("m.ckpt")
    ms.ckpt_to_safetensors("m.ckpt", name_map={"a": "alpha", "zzz": "ignored"})
    d = ms.load_checkpoint("m.safetensors", format="safetensors")
    assert list(d) == ["alpha", "b"] and d["alpha"].asnumpy().tolist() == [0, 1, 2]
    ms.safetensors_to_ckpt("m.safetensors", save_path="out")
    assert list(ms.load_checkpoint("out/m.ckpt")) == ["alpha", "b"]  # sorted, as MindSpore


def test_output_name_replaces_every_occurrence(tmp_cwd):
    _save("a.ckpt.b.ckpt")
    ms.ckpt_to_safetensors("a.ckpt.b.ckpt")
    assert os.path.isfile("a.safetensors.b.safetensors")


@pytest.mark.parametrize(
    "args, msg",
    [
        (("nope",), "For ckpt_to_safetensors, the input path must be a valid path or file, but got nope"),
        (("m.ckpt", "out.d"), "For ckpt_to_safetensors, the save_path must be a directory, but got 'out.d'"),
        (("m.ckpt", None, ["a"]), "the type of 'name_map' must be a directory, but got '<class 'list'>'"),
        (("m.txt",), "For ckpt_to_safetensors, the input file must be a .ckpt file, but got m.txt"),
        (("m.ckpt", None, None, "zzz"), "For ckpt_to_safetensors, the input file does not match the regular expression."),
        ((".",), "For 'ckpt_to_safetensors', no directories starting with 'rank' found in ."),
    ],
)
def test_checks_and_messages(tmp_cwd, args, msg):
    _save("m.ckpt")
    open("m.txt", "w").close()
    with pytest.raises(ValueError) as ei:
        ms.ckpt_to_safetensors(*args)
    assert msg in str(ei.value)


def test_rank_directories_and_regex(tmp_cwd):
    for rank in ("rank_0", "rank_1"):
        os.makedirs(rank)
        _save(f"{rank}/net.ckpt")
        _save(f"{rank}/skip.ckpt")
    os.makedirs("other")
    _save("other/net.ckpt")
    ms.ckpt_to_safetensors(".", save_path="st", file_name_regex="^net", processes_num=2)
    assert sorted(os.listdir("st")) == ["rank_0", "rank_1"]
    assert os.listdir("st/rank_0") == ["net.safetensors"]


def test_str_entries_cannot_go_to_safetensors(tmp_cwd):
    _save("s.ckpt", note="text")
    with pytest.raises(TypeError, match="'note'"):
        ms.ckpt_to_safetensors("s.ckpt")
