"""``mindckpt inspect``: headers only, text and --json, filters, keys and messages."""

from __future__ import annotations

from clirun import KEY16, MANIFEST, golden, one_line_error, run_cli


def test_text_shows_format_crc_totals_and_table():
    out = run_cli("inspect", golden("lenet_crc.ckpt")).out
    assert "MindSpore .ckpt" in out
    assert "crc         present (crc32 " in out and "encryption  none" in out
    assert "entries     8 (8 tensors), 61684 elements" in out
    assert "Float32" in out
    assert "fc1.weight    Float32  (120, 400)     187.5 KiB" in out


def test_json_matches_the_manifest_of_a_mindspore_file_with_str_entries():
    name = "crc_scalars_append.ckpt"
    info = run_cli("inspect", golden(name), "--json").json()
    expected = MANIFEST["files"][name]["records"]
    assert info["format"] == "ckpt" and info["encryption"] is None
    assert info["crc"]["present"] and not info["crc"]["checked"]
    assert info["crc"]["value"] == MANIFEST["files"][name]["crc"]["crc32"]
    assert info["file_size"] == MANIFEST["files"][name]["size"]
    got = [(e["name"], e["dtype"], e["nbytes"]) for e in info["entries"]]
    want = [(r["name"], "str" if r["dtype"] == "str" else r["dtype"], r["nbytes"])
            for r in expected]
    assert [g[0] for g in got] == [w[0] for w in want]
    strs = [e for e in info["entries"] if e["kind"] == "str"]
    assert len(strs) == 3 and info["kinds"]["str"] == 3
    assert info["total_bytes"] == sum(e["nbytes"] for e in info["entries"])
    assert sum(info["bytes_by_dtype"].values()) == info["total_bytes"]


def test_values_of_str_entries():
    res = run_cli("inspect", golden("plain_scalars_append.ckpt"), "--values", "--dtype", "str",
                  "--json").json()
    want = {e["name"]: e["value"] for e in MANIFEST["files"]["plain_scalars_append.ckpt"]["entries"]
            if e["dtype"] == "str"}
    assert {e["name"]: e["value"] for e in res["entries"]} == want


def test_filters_sort_limit_summary():
    f = golden("lenet.ckpt")
    info = run_cli("inspect", f, "--filter", "fc*.weight", "--sort", "size", "--json").json()
    assert [e["name"] for e in info["entries"]] == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert info["entries_total"] == 8  # totals are over the whole file
    out = run_cli("inspect", f, "--filter", "conv*", "--limit", "1").out
    assert "conv1.weight" in out and "conv2.weight" not in out and "(1 of 8 entries shown)" in out
    assert "NAME" not in run_cli("inspect", f, "--summary").out


def test_safetensors_metadata_and_crc_check():
    info = run_cli("inspect", golden("st_crc.safetensors"), "--crc", "--json").json()
    assert info["format"] == "safetensors" and info["crc"]["checked"]
    assert info["metadata"]["crc_num"] == str(info["crc"]["value"])
    out = run_cli("inspect", golden("st_remove_redundancy.safetensors")).out
    assert "remove_redundancy=True" in out


def test_encrypted_key_hex_and_file_mode_detected(tmp_path):
    f = golden("enc_sm4_cbc_k16.ckpt")
    info = run_cli("inspect", f, "--key", KEY16, "--json").json()
    assert info["encryption"] == "SM4-CBC" and info["entries_total"] == 19
    (tmp_path / "k.hex").write_text(KEY16 + "\n")
    (tmp_path / "k.bin").write_bytes(bytes.fromhex(KEY16))
    for spec in ("@" + str(tmp_path / "k.hex"), "@" + str(tmp_path / "k.bin")):
        assert run_cli("inspect", f, "--key", spec, "--json").json()["entries_total"] == 19


def test_missing_key_is_a_usage_error_naming_the_options():
    res = run_cli("inspect", golden("enc_aes_gcm_k16.ckpt"), rc=2)
    line = one_line_error(res)
    assert "AES-GCM" in line and "--key HEX" in line and "@KEYFILE" in line
    assert "dec_key" not in line and "dec_mode" not in line


def test_bad_key_hex_says_hex():
    line = one_line_error(run_cli("inspect", golden("enc_aes_gcm_k16.ckpt"), "--key", "secret",
                                  rc=2))
    assert "hex" in line and "@FILE" in line


def test_wrong_key_and_wrong_mode_one_line():
    f = golden("enc_aes_gcm_k16.ckpt")
    line = one_line_error(run_cli("inspect", f, "--key", "ff" * 16, rc=1))
    assert "--key" in line and "dec_key" not in line
    line = one_line_error(run_cli("inspect", f, "--key", KEY16, "--mode", "AES-CBC", rc=1))
    assert "--mode" in line and "dec_mode" not in line


def test_key_for_a_plain_file_and_missing_file():
    line = one_line_error(run_cli("inspect", golden("lenet.ckpt"), "--key", KEY16, rc=1))
    assert "not encrypted" in line and "Leave out --key" in line
    line = one_line_error(run_cli("inspect", "nope.ckpt", rc=2))
    assert "nope.ckpt" in line


def test_debug_prints_the_traceback():
    res = run_cli("inspect", golden("enc_aes_gcm_k16.ckpt"), "--debug", rc=2)
    assert "Traceback" in res.err and "DecryptionError" in res.err
