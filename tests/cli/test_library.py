"""The library side of the commands, in process: diff pieces, key parsing, message wording,
importer and rekey refusals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import mindckpt as ms
from mindckpt import diff as diff_mod
from mindckpt.cli._common import UsageError, parse_key, translate
from mindckpt.errors import FormatError
from mindckpt.importers import read_hf_index
from mindckpt.tools import convert_checkpoint, rekey_checkpoint


@pytest.mark.parametrize("shape", [(3, 4), (1, 1000), (7, 5, 3), (40,), ()])
def test_pieces_tile_the_tensor_in_order(monkeypatch, shape):
    monkeypatch.setattr(diff_mod, "_PIECE", 32)
    seen = np.zeros(shape, np.int32)
    for box in diff_mod._pieces(shape, 4):
        assert math.prod(b - a for a, b in box) * 4 <= max(32, 4)
        seen[tuple(slice(a, b) for a, b in box)] += 1
    assert (seen == 1).all()


def test_diff_in_small_pieces_counts_exactly(tmp_path, monkeypatch):
    monkeypatch.setattr(diff_mod, "_PIECE", 64)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 13, 5)).astype(np.float32)
    y = x.copy()
    flip = rng.random(x.shape) < 0.1
    y[flip] += 1.0
    ms.save_checkpoint({"x": ms.Parameter(x)}, str(tmp_path / "a.ckpt"))
    ms.save_checkpoint({"x": ms.Parameter(y)}, str(tmp_path / "b.safetensors"),
                       format="safetensors")
    d = diff_mod.diff_checkpoints(str(tmp_path / "a.ckpt"), str(tmp_path / "b.safetensors"))
    (v,) = d.values
    assert v.n_diff == int(flip.sum()) and v.numel == x.size
    assert v.max_abs == pytest.approx(float(np.abs(x - y).max()))
    assert d.same is False and d.differing == [v]


def test_parse_key():
    assert parse_key("000102") == b"\x00\x01\x02"
    assert parse_key("0xFF") == b"\xff"
    for bad in ("xyz", "abc", ""):
        with pytest.raises(UsageError, match="hex"):
            parse_key(bad)
    with pytest.raises(UsageError, match="cannot read the key file"):
        parse_key("@/nonexistent/key")


def test_translate_uses_the_cli_names():
    msg = ("Failed to read the checkpoint file x: the file is encrypted with SM4-CBC; pass "
           "dec_key=<the key used to save it> and dec_mode='SM4-CBC'.")
    assert translate(msg) == ("Failed to read the checkpoint file x: the file is encrypted with "
                              "SM4-CBC; give its key with --key HEX or --key @KEYFILE (the mode, "
                              "SM4-CBC, is read from the file).")
    assert "--out-key" in translate("enc_key for enc_mode='AES-GCM' must be 16 bytes")
    assert translate("For 'load_checkpoint', the crc check is failed") == \
        "the crc check is failed"


def test_hf_index_refuses_paths_outside_its_directory(tmp_path):
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w": "../../etc/passwd"}}))
    with pytest.raises(FormatError, match="outside"):
        read_hf_index(str(tmp_path))
    (tmp_path / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        read_hf_index(str(tmp_path))


def test_rekey_and_convert_refusals(tmp_path):
    src = tmp_path / "a.ckpt"
    ms.save_checkpoint({"w": ms.Parameter(np.ones(3, np.float32))}, str(src))
    with pytest.raises(ValueError, match="nothing to do"):
        rekey_checkpoint(str(src))
    with pytest.raises(ValueError, match="crc_check"):
        rekey_checkpoint(str(src), enc_key=b"k" * 16, crc_check=True)
    with pytest.raises(FileExistsError):
        convert_checkpoint(str(src), str(src))
    with pytest.raises(ValueError, match="cannot tell the output format"):
        convert_checkpoint(str(src), str(tmp_path / "noext"))
