"""``mindckpt diff``: names, dtypes, shapes, values; exit 0 same, 1 different."""

from __future__ import annotations

import numpy as np
from clirun import KEY16, golden, run_cli

import mindckpt as ms


def _save(path, **arrays):
    ms.save_checkpoint({k: ms.Parameter(v) for k, v in arrays.items()}, str(path))


def test_same_content_across_formats_and_encryption(tmp_path):
    a = golden("plain_all_dtypes.ckpt")
    res = run_cli("diff", a, golden("enc_aes_gcm_k16.ckpt"), "--key-b", KEY16)
    assert res.out.startswith("same: 19 entries compared")
    run_cli("diff", golden("lenet.ckpt"), golden("lenet_crc.ckpt"))


def test_value_differences_are_counted(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    y = x.copy()
    y[1, 2] += 0.5
    y[2, 3] = np.nan
    _save(tmp_path / "a.ckpt", w=x, b=np.ones(2, np.int32), only_a=np.zeros(1, np.float32))
    _save(tmp_path / "b.ckpt", w=y, b=np.ones(2, np.int64), only_b=np.zeros(1, np.float32))
    d = run_cli("diff", "a.ckpt", "b.ckpt", "--json", cwd=tmp_path, rc=1).json()
    assert d["same"] is False
    assert d["only_a"] == ["only_a"] and d["only_b"] == ["only_b"]
    assert d["changed"] == {"b": {"a": "Int32 (2,)", "b": "Int64 (2,)"}}
    (w,) = d["differing"]
    assert w["name"] == "w" and w["numel"] == 12 and w["n_diff"] == 2
    assert w["max_abs"] == "inf"  # a NaN against a number
    text = run_cli("diff", "a.ckpt", "b.ckpt", cwd=tmp_path, rc=1).out
    assert "only in A: only_a" in text and "changed:   b: Int32 (2,) -> Int64 (2,)" in text
    assert "values:    w: 2 of 12 elements differ" in text


def test_tolerances_and_names_only(tmp_path):
    x = np.linspace(0, 1, 1000, dtype=np.float32)
    _save(tmp_path / "a.ckpt", w=x)
    _save(tmp_path / "b.ckpt", w=x + np.float32(1e-4))
    d = run_cli("diff", "a.ckpt", "b.ckpt", "--json", cwd=tmp_path, rc=1).json()
    assert d["differing"][0]["n_diff"] == 1000
    assert abs(d["differing"][0]["max_abs"] - 1e-4) < 1e-6
    run_cli("diff", "a.ckpt", "b.ckpt", "--atol", "1e-3", cwd=tmp_path)
    out = run_cli("diff", "a.ckpt", "b.ckpt", "--names-only", cwd=tmp_path).out
    assert out.startswith("same: names, dtypes and shapes")


def test_errors(tmp_path):
    run_cli("diff", golden("lenet.ckpt"), "missing.ckpt", rc=2)
    res = run_cli("diff", golden("lenet.ckpt"), golden("enc_aes_gcm_k16.ckpt"), rc=2)
    assert "--key-b" in res.err
    run_cli("diff", golden("lenet.ckpt"), golden("lenet.ckpt"), "--atol", "-1", rc=2)
