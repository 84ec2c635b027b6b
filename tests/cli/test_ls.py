"""``mindckpt ls``: a ModelCheckpoint directory, newest last, complete or not, latest."""

from __future__ import annotations

import os

import numpy as np
from clirun import KEY16, run_cli

import mindckpt as ms


def _fill(d):
    d.mkdir()
    for i, e in enumerate((1, 2, 3)):
        p = d / f"mlp-{e}_10.ckpt"
        ms.save_checkpoint({"w": ms.Parameter(np.full(3, e, np.float32))}, str(p),
                           append_dict={"epoch_num": e})
        os.utime(p, (1_700_000_000 + i * 60,) * 2)
    bp = d / "mlp-3_4_breakpoint.ckpt"
    ms.save_checkpoint({"w": ms.Parameter(np.ones(3, np.float32))}, str(bp))
    os.utime(bp, (1_700_000_000 + 200,) * 2)
    cut = d / "mlp_1-4_10.ckpt"
    cut.write_bytes((d / "mlp-3_10.ckpt").read_bytes()[:-5])
    os.utime(cut, (1_700_000_000 + 300,) * 2)
    enc = d / "mlp_1-5_10.ckpt"
    ms.save_checkpoint({"w": ms.Parameter(np.ones(3, np.float32))}, str(enc),
                       enc_key=bytes.fromhex(KEY16))
    os.utime(enc, (1_700_000_000 + 100,) * 2)
    (d / "notes.txt").write_text("not a checkpoint")


def test_listing_text_and_json(tmp_path):
    d = tmp_path / "ckpts"
    _fill(d)
    out = run_cli("ls", str(d), "--json").json()
    names = [c["name"] for c in out["checkpoints"]]
    assert names == ["mlp-1_10.ckpt", "mlp-2_10.ckpt", "mlp_1-5_10.ckpt", "mlp-3_10.ckpt",
                     "mlp-3_4_breakpoint.ckpt", "mlp_1-4_10.ckpt"]  # oldest first
    by = {c["name"]: c for c in out["checkpoints"]}
    assert by["mlp_1-4_10.ckpt"]["complete"] is False
    assert by["mlp_1-5_10.ckpt"]["complete"] is None and "AES-GCM" in by["mlp_1-5_10.ckpt"]["status"]
    assert by["mlp-3_4_breakpoint.ckpt"]["breakpoint"] is True
    assert by["mlp-2_10.ckpt"]["epoch"] == 2 and by["mlp-2_10.ckpt"]["step"] == 10
    # mindckpt.train.latest_checkpoint's rule: the newest complete file, breakpoints included
    assert out["latest"].endswith("mlp-3_4_breakpoint.ckpt")
    text = run_cli("ls", str(d)).out
    assert "latest: mlp-3_4_breakpoint.ckpt" in text
    star = [ln for ln in text.splitlines() if ln.startswith("*")]
    assert len(star) == 1 and "mlp-3_4_breakpoint.ckpt" in star[0]
    os.utime(d / "mlp-3_4_breakpoint.ckpt", (1_600_000_000,) * 2)  # now the oldest
    assert run_cli("ls", str(d), "--json").json()["latest"].endswith("mlp-3_10.ckpt")
    only = run_cli("ls", str(d), "--prefix", "mlp_1", "--json").json()
    assert {c["prefix"] for c in only["checkpoints"]} == {"mlp_1"}


def test_empty_and_missing(tmp_path):
    assert "no checkpoints" in run_cli("ls", str(tmp_path)).out
    run_cli("ls", str(tmp_path / "nope"), rc=2)
