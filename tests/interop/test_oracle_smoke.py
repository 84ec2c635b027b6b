"""Tests of the MindSpore oracle itself (save and load both inside real MindSpore).

They check that the oracle transports data bit-exactly and reports MindSpore's behaviour, so
that interop tests built on it can be trusted. Skipped when MindSpore is unavailable.
"""
import hashlib
import os
import zlib

import numpy as np
import pytest

import ms_oracle as mso

pytestmark = pytest.mark.mindspore


@pytest.fixture(autouse=True)
def _need_ms():
    mso.require_mindspore()


def _all_dtype_arrays():
    import ml_dtypes

    rng = np.random.default_rng(7)
    arrs = {
        "f16": rng.standard_normal((2, 3)).astype(np.float16),
        "f32": np.array([np.inf, -np.inf, np.nan, -0.0, 1e-45, 3.4e38], np.float32),
        "f64": np.array(np.e),  # 0-d
        "bf16": rng.standard_normal((2, 3)).astype(ml_dtypes.bfloat16),
        "bf16_0d": np.array(-2.5, dtype=ml_dtypes.bfloat16),
        "bool": np.array([True, False, True]),
    }
    for dt in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"):
        info = np.iinfo(dt)
        arrs[dt] = rng.integers(info.min, info.max, size=(2, 2), dtype=dt, endpoint=True)
    arrs["i64_0d"] = np.array(-(2**63), np.int64)
    return arrs


def _same(a, b):
    return (a.dtype == b.dtype and a.shape == b.shape
            and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())


def test_version():
    v = mso.version()
    assert v["mindspore"] == "2.10.0"
    assert "import mindspore" not in mso.unavailable_reason()


@pytest.mark.parametrize("kind", ["list_dict", "list_param", "dict"])
def test_roundtrip_all_dtypes_bit_exact(tmp_path, kind):
    arrs = _all_dtype_arrays()
    if kind != "list_dict":  # a bfloat16 Parameter cannot be created with numpy 2 (spec §12)
        arrs = {k: v for k, v in arrs.items() if not k.startswith("bf16")}
    ents = [mso.entry(k, v) for k, v in arrs.items()]
    info = mso.save(tmp_path / "all.ckpt", ents, kind=kind)
    assert info["path"] == str(tmp_path / "all.ckpt")
    assert info["mode"] == "0o400"
    with open(info["path"], "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == info["sha256"]
    got = mso.load(info["path"])
    assert [e["name"] for e in got] == list(arrs)
    for e in got:
        assert e["kind"] == "Parameter" and e["param_name"] == e["name"]
        assert _same(mso.to_numpy(e), arrs[e["name"]]), e["name"]
    # the file itself: one record per entry, dims as given (0-d -> no dims)
    recs = mso.scan_records(info["path"])
    assert [(r["name"], r["dims"]) for r in recs] == [(k, list(v.shape)) for k, v in arrs.items()]


def test_append_dict_conversions_and_strings(tmp_path):
    p = tmp_path / "app.ckpt"
    mso.save(p, [mso.entry("w", np.ones((2,), np.float32)),
                 mso.str_entry("note", "h\u00e9llo \U0001F642"),
                 mso.entry("arr", np.arange(3), as_="ndarray")], kind="dict",
             append_dict={"epoch": 3, "neg": -1, "lr": 0.01, "f64": {"float64": 0.1},
                          "flag": True, "txt": "", "t": {"tensor": mso.entry("t", np.int16([5]))},
                          "gen": {"generator_seed": 42}})
    got = {e["name"]: e for e in mso.load(p)}
    assert list(got) == ["w", "note", "arr", "epoch", "neg", "lr", "f64", "flag", "txt", "t",
                         "gen"]
    assert got["note"] == {"name": "note", "kind": "str", "dtype": "str",
                           "value": "h\u00e9llo \U0001F642"}
    assert got["txt"]["value"] == ""
    assert _same(mso.to_numpy(got["arr"]), np.arange(3))  # int64 kept
    want = {"epoch": np.array(3, np.int64), "neg": np.array(-1, np.int64),
            "lr": np.array(0.01, np.float32), "f64": np.array(0.1, np.float64),
            "flag": np.array(True), "t": np.int16([5]),
            "gen": np.array([42] + [0] * 15, np.uint8)}
    for k, v in want.items():
        assert _same(mso.to_numpy(got[k]), v), k
    recs = {r["name"]: r for r in mso.scan_records(p)}
    assert recs["note"]["dtype"] == "str" and recs["note"]["dims"] == [0]
    assert recs["note"]["nbytes"] == 4 * len("h\u00e9llo \U0001F642")
    assert recs["txt"]["nbytes"] == 4 and recs["epoch"]["dims"] == []


def test_crc_trailer_and_crc_check(tmp_path):
    ents = [mso.entry("a", np.arange(10, dtype=np.float32))]
    plain = mso.save(tmp_path / "p.ckpt", ents)
    crc = mso.save(tmp_path / "c.ckpt", ents, crc_check=True)
    body = open(plain["path"], "rb").read()
    data = open(crc["path"], "rb").read()
    assert data == body + b"crc_num" + zlib.crc32(body).to_bytes(10, "big")
    assert [e["name"] for e in mso.load(crc["path"], crc_check=True)] == ["a"]
    # corrupt one data byte (copy: MindSpore leaves the file 0400)
    bad = bytearray(data)
    bad[len(body) - 1] ^= 1
    bp = tmp_path / "bad.ckpt"
    bp.write_bytes(bytes(bad))
    err = mso.load_error(bp, crc_check=True)
    assert err["raised"] and err["error_type"] == "ValueError"
    assert "May not have permission to read it" in err["error"]
    assert mso.load_error(bp)["raised"] is False  # without crc_check the flip goes unnoticed


@pytest.mark.parametrize("mode,klen,magic", [("AES-GCM", 16, "d85e3a7f"),
                                             ("AES-GCM", 32, "d85e3a7f"),
                                             ("AES-CBC", 24, "d95e3a7f"),
                                             ("SM4-CBC", 16, "da5e3a7f")])
def test_encryption_roundtrip_and_wrong_key(tmp_path, mode, klen, magic):
    key = bytes(range(klen))
    arrs = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.array(7, np.int64)}
    plain = mso.save(tmp_path / "p.ckpt", [mso.entry(k, v) for k, v in arrs.items()])
    info = mso.save(tmp_path / "e.ckpt", [mso.entry(k, v) for k, v in arrs.items()],
                    enc_key=key, enc_mode=mode)
    data = open(info["path"], "rb").read()
    assert data[:4].hex() == magic
    want_len = 48 + plain["size"] if mode == "AES-GCM" else 32 + (plain["size"] // 16 + 1) * 16
    assert len(data) == want_len
    got = mso.load(info["path"], dec_key=key, dec_mode=mode)
    assert all(_same(mso.to_numpy(e), arrs[e["name"]]) for e in got) and len(got) == 2
    err = mso.load_error(info["path"], dec_key=bytes(klen), dec_mode=mode)
    assert err["raised"] and err["error_type"] == "ValueError"
    if mode == "AES-GCM":
        assert "encrypted or tempered with" in err["error"]


def test_safetensors_roundtrip_sorted(tmp_path):
    arrs = {"zeta": np.arange(4, dtype=np.int32), "alpha": np.ones((2, 2), np.float16),
            "mid": np.array([True, False])}
    info = mso.save(tmp_path / "m", [mso.entry(k, v) for k, v in arrs.items()], kind="dict",
                    format="safetensors", crc_check=True)
    assert info["path"] == str(tmp_path / "m.safetensors")
    got = mso.load(info["path"], format="safetensors", crc_check=True)
    assert [e["name"] for e in got] == sorted(arrs)
    assert all(_same(mso.to_numpy(e), arrs[e["name"]]) for e in got)
    assert all(e["param_name"] != e["name"] for e in got)  # auto names, spec api §6.5


def test_fill_descriptions_match_locally(tmp_path):
    ents = [mso.fill_entry("h", "Float32", (1000, 300), "hash", seed=3),
            mso.fill_entry("a", "Int8", (70000,), "arange"),
            mso.fill_entry("b", "BFloat16", (513,), "arange"),
            mso.fill_entry("q", "Bool", (4, 5), "hash", seed=9),
            mso.fill_entry("c", "UInt16", (3,), "const", byte=0xAB)]
    mso.save(tmp_path / "f.ckpt", ents)
    got = mso.load(tmp_path / "f.ckpt", inline_limit=0)
    assert [e["name"] for e in got] == ["h", "a", "b", "q", "c"]
    for e, d in zip(got, ents, strict=False):
        raw = mso.expected_bytes(d)
        assert "hex" not in e and e["nbytes"] == len(raw)
        assert e["sha256"] == hashlib.sha256(raw).hexdigest(), d["name"]
    assert mso.expected_array(ents[1])[127:130].tolist() == [127, -128, -127]
    assert not np.isnan(mso.expected_array(ents[0])).any()


def test_cells_and_oneshot(tmp_path):
    params = mso.cell_params({"cell": "lenet", "seed": 1}, inline_limit=0)
    info = mso.save(tmp_path / "lenet.ckpt", save_obj={"kind": "cell", "cell": "lenet",
                                                       "seed": 1}, fresh=True)
    assert info["size"] == 247012
    got = mso.load(info["path"], inline_limit=0, fresh=True)
    assert [(e["name"], e["shape"], e["sha256"]) for e in got] == \
        [(p["name"], p["shape"], p["sha256"]) for p in params]
    order = [p["name"] for p in mso.cell_params({"cell": "ordering"})]
    assert order == ["first", "top_explicit", "unnamed", "emptyname", "last", "sub_a.w",
                     "sub_a.b", "sub_a.e", "sub_a.inner.weight", "sub_a.inner.bias",
                     "sub_b.weight", "sub_b.bias"]


def test_errors_are_reported(tmp_path):
    with pytest.raises(mso.OracleError) as ei:
        mso.save(tmp_path / "k.ckpt", [mso.entry("w", np.ones(2, np.float32))],
                 enc_key=b"short", enc_mode="AES-GCM")
    assert ei.value.error_type == "ValueError" and "Encrypt failed" in ei.value.error
    assert "k.tmp" in os.listdir(tmp_path)  # delete-first save leaves the temp file (spec §9)
    with pytest.raises(mso.OracleError) as ei:
        mso.call({"op": "no_such_op"})
    assert "known:" in ei.value.error
    r = mso.load_error(tmp_path / "missing.ckpt")
    assert r["raised"] and "does not exist" in r["error"]
    replies = mso.batch([{"op": "version"}, {"op": "nope"}])
    assert [r["ok"] for r in replies] == [True, False]


@pytest.mark.slow
def test_large_tensor_slicing(tmp_path):
    """> 512 MiB tensor: byte-chunked records (spec §5.1), loaded back bit-exactly."""
    d = mso.fill_entry("big", "UInt8", (5, 120_000_000), "hash", seed=5)
    info = mso.save(tmp_path / "big.ckpt", [d, mso.fill_entry("tail", "Int32", (3,), "arange")])
    recs = mso.scan_records(info["path"])
    assert [(r["name"], r["dims"], r["nbytes"]) for r in recs] == [
        ("big", [5, 120_000_000], 536_870_912), ("big", [5, 120_000_000], 63_129_088),
        ("tail", [3], 12)]
    got = mso.load(info["path"], inline_limit=0)
    assert [(e["name"], e["shape"]) for e in got] == [("big", [5, 120_000_000]), ("tail", [3])]
    assert got[0]["sha256"] == hashlib.sha256(mso.expected_bytes(d)).hexdigest()


@pytest.mark.parametrize("mode", [True, "thread", "process"])
def test_async_save_is_waited_for(tmp_path, mode):
    arrs = {"w": np.arange(12, dtype=np.float64).reshape(3, 4), "e": np.zeros((0,), np.float32)}
    info = mso.save(tmp_path / "a.ckpt", [mso.entry(k, v) for k, v in arrs.items()],
                    async_save=mode)
    assert info["new_files"] == ["a.ckpt"]
    recs = mso.scan_records(info["path"])
    # array-split path keeps the zero-size tensor as one empty record (spec §5.1)
    assert [(r["name"], r["dims"], r["nbytes"]) for r in recs] == [("w", [3, 4], 96),
                                                                   ("e", [0], 0)]
    got = mso.load(info["path"])
    assert _same(mso.to_numpy(got[0]), arrs["w"])
    assert (got[1]["name"], got[1]["shape"]) == ("e", [])  # dims [0] -> scalar on load (§5.2)
