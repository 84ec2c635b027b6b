"""The mindckpt command: demo, inspect, convert."""

from __future__ import annotations

import numpy as np

import mindckpt as ms
from mindckpt.cli import main


def test_inspect_lists_entries(tmp_cwd, capsys):
    ms.save_checkpoint({"w": ms.Parameter(np.ones((2, 3), np.float32)), "s": "txt"}, "a.ckpt",
                       crc_check=True)
    assert main(["inspect", "a.ckpt", "--crc"]) == 0
    out = capsys.readouterr().out
    assert "w\tFloat32\t(2, 3)" in out and "s\tstr\t'txt'" in out and "2 entries, 24 bytes" in out


def test_inspect_encrypted_and_errors(tmp_cwd, capsys):
    key = bytes(range(16))
    ms.save_checkpoint({"w": ms.Parameter(np.ones(2, np.float32))}, "e.ckpt", enc_key=key)
    assert main(["inspect", "e.ckpt", "--key", key.hex()]) == 0
    assert main(["inspect", "e.ckpt"]) == 2
    assert "encrypted with AES-GCM" in capsys.readouterr().err
    assert main(["inspect", "missing.ckpt"]) == 2


def test_convert_both_ways(tmp_cwd):
    ms.save_checkpoint({"w": ms.Parameter(np.arange(6, dtype=np.int16).reshape(2, 3))}, "a.ckpt")
    assert main(["convert", "a.ckpt", "a.safetensors", "--crc"]) == 0
    d = ms.load_checkpoint("a.safetensors", format="safetensors", crc_check=True)
    assert d["w"].asnumpy().tolist() == [[0, 1, 2], [3, 4, 5]]
    assert main(["convert", "a.safetensors", "b.ckpt"]) == 0
    assert open("b.ckpt", "rb").read() == open("a.ckpt", "rb").read()


def test_demo_runs(tmp_path, capsys):
    assert main(["demo", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "{'conv2.weight': Parameter (name=conv2.weight, shape=(16, 6, 5, 5)" in out
    assert "reloaded LeNet5 equals the saved one: True" in out
    assert "final weights identical to the resumed run: yes" in out
