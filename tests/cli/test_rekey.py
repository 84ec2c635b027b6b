"""``mindckpt rekey``: encrypt, decrypt, change key/mode; streamed; refuses damaged files."""

from __future__ import annotations

import os

from clirun import KEY16, golden, one_line_error, run_cli, flip_bit

import mindckpt as ms

KEY24 = "bb" * 24


def test_encrypt_change_decrypt_round_trip(work):
    res = run_cli("rekey", "lenet_crc.ckpt", "--out-key", KEY16, "-o", "e.ckpt", cwd=work)
    assert res.out.startswith(f"wrote {work / 'e.ckpt'} (plain -> AES-GCM")
    assert "source CRC ok" in res.out
    assert len(ms.load_checkpoint(str(work / "e.ckpt"), dec_key=bytes.fromhex(KEY16))) == 8
    out = run_cli("rekey", "e.ckpt", "--key", KEY16, "--out-key", KEY24, "--out-mode", "SM4-CBC",
                  "-o", "s.ckpt", cwd=work, rc=1)  # SM4 takes 16-byte keys
    assert "--out-key" in one_line_error(out)
    res = run_cli("rekey", "e.ckpt", "--key", KEY16, "--out-key", KEY24, "--out-mode",
                  "AES-CBC", "--json", cwd=work).json()  # in place
    assert res["before"] == "AES-GCM" and res["after"] == "AES-CBC"
    run_cli("rekey", "e.ckpt", "--key", KEY24, "--decrypt", "--crc", "-o", "p.ckpt", cwd=work)
    assert (work / "p.ckpt").read_bytes() == (work / "lenet_crc.ckpt").read_bytes()


def test_mindspore_encrypted_file_decrypts_to_its_plaintext(work):
    run_cli("rekey", "enc_aes_gcm_k16.ckpt", "--key", KEY16, "--decrypt", "-o", "p.ckpt",
            cwd=work)
    assert (work / "p.ckpt").read_bytes() == (work / "plain_all_dtypes.ckpt").read_bytes()


def test_damaged_sources_are_refused_and_the_file_kept(work):
    flip_bit(work / "lenet_crc.ckpt", 5000)
    before = (work / "lenet_crc.ckpt").read_bytes()
    res = run_cli("rekey", "lenet_crc.ckpt", "--out-key", KEY16, cwd=work, rc=1)
    assert "crc" in one_line_error(res)
    assert (work / "lenet_crc.ckpt").read_bytes() == before
    flip_bit(work / "enc_aes_gcm_k16.ckpt", 300)
    res = run_cli("rekey", "enc_aes_gcm_k16.ckpt", "--key", KEY16, "--decrypt", "-o", "x.ckpt",
                  cwd=work, rc=1)
    one_line_error(res)
    assert not (work / "x.ckpt").exists()
    assert not [n for n in os.listdir(work) if n.endswith(".tmp")]


def test_usage_errors(work):
    run_cli("rekey", "lenet.ckpt", cwd=work, rc=2)  # neither --out-key nor --decrypt
    line = one_line_error(run_cli("rekey", "lenet.ckpt", "--decrypt", cwd=work, rc=2))
    assert "not encrypted" in line
    line = one_line_error(run_cli("rekey", "enc_aes_gcm_k16.ckpt", "--decrypt", cwd=work, rc=2))
    assert "--key" in line
    run_cli("rekey", "lenet.ckpt", "--out-key", KEY16, "--crc", cwd=work, rc=2)
    line = one_line_error(run_cli("rekey", golden("st_crc.safetensors"), "--out-key", KEY16,
                                  "-o", str(work / "x.ckpt"), rc=1))
    assert "safetensors" in line
