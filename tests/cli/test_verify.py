"""``mindckpt verify``: exit 0/1/2, one line per file, --json, every check."""

from __future__ import annotations

import shutil

from clirun import KEY16, golden, run_cli, flip_bit


def test_good_files_exit_0_one_line_each(work):
    files = ["lenet.ckpt", "lenet_crc.ckpt", "crc_scalars_append.ckpt", "st_crc.safetensors",
             "enc_aes_gcm_k16.ckpt"]
    res = run_cli("verify", *files, "--key", KEY16, cwd=work)
    lines = res.out.splitlines()
    assert len(lines) == len(files) and all(ln.startswith("OK ") for ln in lines)
    assert "no CRC" in lines[0] and "CRC ok" in lines[1] and "AES-GCM tags ok" in lines[4]


def test_json(work):
    out = run_cli("verify", "lenet_crc.ckpt", "st_crc.safetensors", "enc_aes_gcm_k16.ckpt",
                  "--key", KEY16, "--json", cwd=work).json()
    assert [r["ok"] for r in out] == [True, True, True]
    assert out[0]["crc"] == "ok" and out[1]["crc"] == "ok"
    assert out[2]["encryption"] == "AES-GCM" and out[2]["authenticated"]
    assert out[0]["entries"] == 8


def test_corrupt_crc_exits_1(work):
    flip_bit(work / "lenet_crc.ckpt", 5000)  # inside fc1.weight's payload
    res = run_cli("verify", "lenet.ckpt", "lenet_crc.ckpt", cwd=work, rc=1)
    ok, bad = res.out.splitlines()
    assert ok.startswith("OK ") and bad.startswith("BAD  lenet_crc.ckpt:") and "crc" in bad
    out = run_cli("verify", "lenet_crc.ckpt", "--json", cwd=work, rc=1).json()
    assert out[0]["ok"] is False and out[0]["error_type"] == "ChecksumError"


def test_corrupt_safetensors_crc_exits_1(work):
    size = (work / "st_crc.safetensors").stat().st_size
    flip_bit(work / "st_crc.safetensors", size - 3)
    out = run_cli("verify", "st_crc.safetensors", "--json", cwd=work, rc=1).json()
    assert out[0]["error_type"] == "ChecksumError"


def test_tampered_gcm_block_and_truncation_exit_1(work):
    flip_bit(work / "enc_aes_gcm_k16.ckpt", 200)
    shutil.copyfile(golden("lenet.ckpt"), work / "cut.ckpt")
    data = (work / "cut.ckpt").read_bytes()
    (work / "cut.ckpt").write_bytes(data[: len(data) - 100])
    out = run_cli("verify", "enc_aes_gcm_k16.ckpt", "cut.ckpt", "--key", KEY16, "--json",
                  cwd=work, rc=1).json()
    assert out[0]["error_type"] == "DecryptionError"
    assert out[1]["error_type"] == "FormatError"


def test_missing_file_or_key_is_bad_file_bad_option_is_usage(work):
    res = run_cli("verify", "lenet.ckpt", "missing.ckpt", "enc_aes_gcm_k16.ckpt", cwd=work, rc=1)
    lines = res.out.splitlines()
    assert lines[0].startswith("OK") and lines[1].startswith("BAD  missing.ckpt")
    assert "--key" in lines[2]
    run_cli("verify", "lenet.ckpt", "--key", "xyz", cwd=work, rc=2)


def test_mindspore_clear_crc_trailer_after_encryption_is_explained():
    out = run_cli("verify", golden("enc_crc_aes_gcm_k16.ckpt"), "--key", KEY16, rc=1).out
    assert "last 17 bytes" in out and "dec_key" not in out
