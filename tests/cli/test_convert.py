"""``mindckpt convert``: .ckpt <-> safetensors, torch.save, HF shards, keys, drop/rename."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from clirun import KEY16, one_line_error, run_cli, flip_bit

import mindckpt as ms

KEY32 = "aa" * 32


def test_ckpt_to_safetensors_and_back_is_byte_identical(work):
    res = run_cli("convert", "lenet.ckpt", "l.safetensors", "--crc", cwd=work)
    assert res.out.strip().startswith(f"wrote {work / 'l.safetensors'} (safetensors, 8 entries")
    d = ms.load_checkpoint(str(work / "l.safetensors"), format="safetensors", crc_check=True)
    assert len(d) == 8
    run_cli("convert", "l.safetensors", "back.ckpt", cwd=work)
    # safetensors keeps names sorted, so the order differs; the content does not
    assert run_cli("diff", "lenet.ckpt", "back.ckpt", cwd=work).out.startswith("same: 8 entries")
    run_cli("convert", "back.ckpt", "again.safetensors", cwd=work)
    run_cli("convert", "l.safetensors", "l2.safetensors", cwd=work)
    st = (work / "l2.safetensors").read_bytes()
    assert (work / "again.safetensors").read_bytes() == st


def test_str_entries_kept_in_ckpt_dropped_with_a_note_for_safetensors(work):
    src = "plain_scalars_append.ckpt"  # written by MindSpore: 3 str entries
    res = run_cli("convert", src, "s.safetensors", cwd=work)
    notes = [ln for ln in res.err.splitlines() if ln.startswith("note: dropped")]
    assert len(notes) == 3 and all("safetensors" in n for n in notes)
    assert "3 dropped" in res.out
    run_cli("convert", src, "s.ckpt", cwd=work)
    a = ms.load_checkpoint(str(work / src))
    b = ms.load_checkpoint(str(work / "s.ckpt"))
    assert list(a) == list(b) and all(
        (a[k] == b[k]) if isinstance(a[k], str) else np.array_equal(a[k].asnumpy(), b[k].asnumpy())
        for k in a)
    assert (work / "s.ckpt").read_bytes() == (work / src).read_bytes()
    assert "note" not in run_cli("convert", src, "q.safetensors", "-q", cwd=work).err


def test_corrupt_source_crc_is_refused_and_nothing_written(work):
    flip_bit(work / "crc_scalars_append.ckpt", 40)
    res = run_cli("convert", "crc_scalars_append.ckpt", "x.ckpt", cwd=work, rc=1)
    assert "crc" in one_line_error(res)
    assert not (work / "x.ckpt").exists()
    assert not [n for n in os.listdir(work) if n.endswith(".tmp")]


def test_verified_crc_is_reported(work):
    out = run_cli("convert", "crc_scalars_append.ckpt", "x.ckpt", "--json", cwd=work).json()
    assert out["source_crc"] == "ok" and out["entries"] == 16 and out["crc"] is False


def test_encrypted_input_and_output(work):
    res = run_cli("convert", "enc_aes_gcm_k16.ckpt", "plain.ckpt", "--key", KEY16, cwd=work)
    assert "wrote" in res.out
    assert (work / "plain.ckpt").read_bytes() == (work / "plain_all_dtypes.ckpt").read_bytes()
    (work / "new.key").write_text(KEY32)
    out = run_cli("convert", "lenet.ckpt", "enc.ckpt", "--out-key", "@new.key", "--out-mode",
                  "AES-CBC", "--json", cwd=work)
    assert json.loads(out.out)["encryption"] == "AES-CBC"
    assert "without any integrity protection" in out.err and "--out-mode AES-GCM" in out.err  # the CBC warning, one line, CLI-shaped
    loaded = ms.load_checkpoint(str(work / "enc.ckpt"), dec_key=bytes.fromhex(KEY32),
                                dec_mode="AES-CBC")
    assert len(loaded) == 8
    # mode detected from the file: no --mode needed to read it back
    run_cli("convert", "enc.ckpt", "again.safetensors", "--key", "@new.key", cwd=work)


def test_output_option_errors(work):
    line = one_line_error(run_cli("convert", "lenet.ckpt", "x.safetensors", "--out-key", KEY16,
                                  cwd=work, rc=1))
    assert "safetensors" in line and "--out-key" in line
    line = one_line_error(run_cli("convert", "lenet.ckpt", "x.ckpt", "--out-key", "0011",
                                  cwd=work, rc=1))
    assert "--out-key" in line and "16, 24 or 32 bytes" in line
    line = one_line_error(run_cli("convert", "lenet.ckpt", "noext", cwd=work, rc=1))
    assert ".ckpt or .safetensors" in line and "--to" in line
    res = run_cli("convert", "lenet.ckpt", "noext", "--to", "ckpt", cwd=work)
    assert res.out.startswith(f"wrote {work / 'noext'} ")  # the path really written
    assert (work / "noext").exists() and not (work / "noext.ckpt").exists()
    line = one_line_error(run_cli("convert", "lenet.ckpt", "noext", "--to", "ckpt", cwd=work,
                                  rc=2))
    assert "--force" in line
    run_cli("convert", "lenet.ckpt", "noext", "--to", "ckpt", "--force", cwd=work)
    line = one_line_error(run_cli("convert", "enc_aes_gcm_k16.ckpt", "x.ckpt", cwd=work, rc=2))
    assert "--key" in line


def test_drop_and_rename(work):
    out = run_cli("convert", "lenet.ckpt", "r.ckpt", "--drop", "*.bias", "--rename",
                  "fc1.weight=dense1.weight", "--rename", "conv*=c*", "--json", cwd=work).json()
    assert out["entries"] == 5 and len(out["dropped"]) == 3
    names = list(ms.load_checkpoint(str(work / "r.ckpt")))
    assert names == ["c1.weight", "c2.weight", "dense1.weight", "fc2.weight", "fc3.weight"]
    line = one_line_error(run_cli("convert", "lenet.ckpt", "r2.ckpt", "--rename",
                                  "fc1.weight=fc2.weight", cwd=work, rc=1))
    assert "fc2.weight" in line
    run_cli("convert", "lenet.ckpt", "r3.ckpt", "--rename", "nonsense", cwd=work, rc=2)
    run_cli("convert", "lenet.ckpt", "r4.ckpt", "--drop", "*", cwd=work, rc=1)


torch = pytest.importorskip("torch")


class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_torch_save_input_weights_only(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    model[0].weight.data = model[0].weight.data.to(torch.bfloat16)
    torch.save({"model": model.state_dict(), "epoch": 7, "note": "hello", "steps": [1, 2]},
               tmp_path / "train.pt")
    out = run_cli("convert", "train.pt", "t.ckpt", "--json", cwd=tmp_path).json()
    assert out["source_format"] == "torch" and out["entries"] == 8
    d = ms.load_checkpoint(str(tmp_path / "t.ckpt"))
    assert d["note"] == "hello" and int(d["epoch"].asnumpy()) == 7
    assert str(d["model.0.weight"].dtype) == "BFloat16"
    got = torch.from_numpy(d["model.2.bias"].asnumpy())
    assert torch.equal(got, model[2].bias.data)


def test_torch_file_with_arbitrary_objects_is_refused_and_never_run(tmp_path):
    torch.save({"w": torch.ones(2), "evil": Evil()}, tmp_path / "evil.pt")
    res = run_cli("convert", "evil.pt", "e.ckpt", cwd=tmp_path, rc=1)
    line = one_line_error(res)
    assert "weights_only" in line
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "e.ckpt").exists()


def test_hugging_face_sharded_checkpoint(tmp_path):
    from safetensors.numpy import save_file

    hf = tmp_path / "hf"
    hf.mkdir()
    rng = np.random.default_rng(0)
    shard1 = {"embed.weight": rng.standard_normal((10, 4)).astype(np.float32),
              "layer.0.w": rng.standard_normal((4, 4)).astype(np.float16)}
    shard2 = {"layer.1.w": rng.standard_normal((4, 4)).astype(np.float32),
              "head.bias": np.arange(3, dtype=np.int64)}
    save_file(shard1, str(hf / "model-00001-of-00002.safetensors"))
    save_file(shard2, str(hf / "model-00002-of-00002.safetensors"))
    wm = {**{k: "model-00001-of-00002.safetensors" for k in shard1},
          **{k: "model-00002-of-00002.safetensors" for k in shard2}}
    (hf / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 0}, "weight_map": wm}))
    out = run_cli("convert", "hf", "all.safetensors", "--json", cwd=tmp_path).json()
    assert out["source_format"] == "hf" and out["entries"] == 4
    with ms.open_checkpoint(str(tmp_path / "all.safetensors")) as f:
        for k, v in {**shard1, **shard2}.items():
            assert np.array_equal(f.get_tensor(k), v)
    run_cli("convert", str(hf / "model.safetensors.index.json"), "all.ckpt", cwd=tmp_path)
    wm["missing.w"] = "model-00002-of-00002.safetensors"
    (hf / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    line = one_line_error(run_cli("convert", "hf", "bad.ckpt", cwd=tmp_path, rc=1))
    assert "missing.w" in line
