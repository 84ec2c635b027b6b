"""mindckpt against MindSpore 2.10: golden files (always) and live round trips (when available).

Golden files were written by real MindSpore (tests/golden/make_golden.py); manifest.json says
what each holds.  Byte identity: mindckpt saving the same records must produce the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import mindckpt as ms
import ms_oracle as mso
from mindckpt.formats.ckpt import content_view

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "files"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())["files"]
NP = {t.name: t.np_dtype for t in ms.tensor.DTYPES}


def sha(arr: np.ndarray) -> str:
    return hashlib.sha256(content_view(arr)).hexdigest()


def _load_kwargs(info: dict) -> dict:
    kw = dict(info.get("load_kwargs") or {})
    enc = info.get("encryption")
    if enc:
        kw["dec_key"] = bytes.fromhex(enc["key_hex"])
        kw["dec_mode"] = enc["mode"]
    kw.pop("dec_key_hex", None)
    if info.get("format") == "safetensors":
        kw["format"] = "safetensors"
    return {k: v for k, v in kw.items() if k in {
        "dec_key", "dec_mode", "crc_check", "format", "specify_prefix", "filter_prefix"}}


LOADABLE = [k for k, v in MANIFEST.items() if v.get("entries") and not v.get("load_error")]


@pytest.mark.parametrize("name", LOADABLE)
def test_golden_file_loads_with_the_right_values(name):
    info = MANIFEST[name]
    d = ms.load_checkpoint(str(GOLDEN / name), **_load_kwargs(info))
    want = info["entries"]
    assert list(d) == [e["name"] for e in want]
    for e in want:
        got = d[e["name"]]
        if e["dtype"] == "str":
            assert got == e["value"]
            continue
        assert str(got.dtype) == e["dtype"], e["name"]
        assert list(got.shape) == list(e["shape"]), e["name"]
        assert sha(got.asnumpy()) == e["sha256"], e["name"]


def test_golden_files_mindspore_cannot_load():
    # MindSpore writes names longer than 1024 characters but cannot read them; we can
    d = ms.load_checkpoint(str(GOLDEN / "names_too_long.ckpt"))
    assert max(len(k) for k in d) == 1025
    with pytest.raises(ValueError, match="empty"):
        ms.load_checkpoint(str(GOLDEN / "empty.ckpt"))
    info = MANIFEST["enc_crc_aes_gcm_k16.ckpt"]
    with pytest.raises(ms.DecryptionError):
        ms.load_checkpoint(str(GOLDEN / "enc_crc_aes_gcm_k16.ckpt"),
                           dec_key=bytes.fromhex(info["encryption"]["key_hex"]))


def _records_as_save_obj(records: list[dict]) -> dict:
    obj: dict = {}
    for r in records:
        raw = bytes.fromhex(r["hex"])
        if r["dtype"] == "str":
            obj[r["name"]] = np.frombuffer(raw, f"<U{max(len(raw) // 4, 1)}")[0].item() if raw else ""
            continue
        arr = np.frombuffer(raw, NP[r["dtype"]]).reshape(r["dims"])
        t = ms.Tensor(arr, dtype=ms.tensor.dtype_of_name(r["dtype"]))
        obj[r["name"]] = ms.Parameter(t, name=r["name"])
    return obj


IDENTITY = [k for k, v in MANIFEST.items() if k.endswith(".ckpt") and v.get("records")
            and not v.get("encryption") and all("hex" in r for r in v["records"])]


@pytest.mark.parametrize("name", IDENTITY)
def test_byte_identity_with_mindspore(tmp_cwd, name):
    info = MANIFEST[name]
    ms.save_checkpoint(_records_as_save_obj(info["records"]), "ours.ckpt",
                       crc_check=bool(info.get("crc")))
    ours = Path("ours.ckpt").read_bytes()
    assert hashlib.sha256(ours).hexdigest() == info["sha256"], name


def test_byte_identity_from_python_values(tmp_cwd):
    """The append_dict conversions (int, float, np.float64, bool, str, Tensor) give MindSpore's bytes."""
    recs = {r["name"]: r for r in MANIFEST["plain_scalars_append.ckpt"]["records"]}

    def arr(n):
        r = recs[n]
        return np.frombuffer(bytes.fromhex(r["hex"]), NP[r["dtype"]]).reshape(r["dims"])

    ms.save_checkpoint(
        [ms.Parameter(ms.Tensor(arr("w")), name="w"), ms.Parameter(ms.Tensor(arr("b")), name="b")],
        "ours.ckpt",
        append_dict={"epoch_num": 5, "neg": -7, "big": 2**62, "u64": 2**63 + 5, "lr": 0.01,
                     "f64": np.float64(0.1), "flag": True, "flag_false": False, "s": "hello",
                     "uni": "h\u00e9llo \u20ac\U0001D11E", "empty": "",
                     "t": ms.Tensor(np.array([7, -8], np.int32)),
                     "tp": ms.Parameter(ms.Tensor(np.array([0.5, -1.25], np.float16)), name="other_name"),
                     "gen": ms.Tensor(arr("gen"))},  # MindSpore stores a Generator as its state
    )
    assert hashlib.sha256(Path("ours.ckpt").read_bytes()).hexdigest() == \
        MANIFEST["plain_scalars_append.ckpt"]["sha256"]


def test_lenet_structure_matches_mindspore():
    from mindckpt.examples import LeNet5

    recs = MANIFEST["lenet.ckpt"]["records"]
    assert [(p.name, list(p.shape)) for p in LeNet5().get_parameters()] == \
        [(r["name"], r["dims"]) for r in recs]


# --------------------------------------------------------------------------- live


def _arrays():
    rng = np.random.default_rng(11)
    out = {
        "f16": rng.standard_normal((2, 3)).astype(np.float16),
        "f32": np.array([np.inf, -np.inf, -0.0, 1e-45, 3.4e38, 1.5], np.float32).reshape(2, 3),
        "f64": np.array(np.pi),
        "bf16": rng.standard_normal((3, 2)).astype(ml_dtypes.bfloat16),
        "bool": np.array([True, False, True]),
        "big": rng.standard_normal((64, 1024)).astype(np.float32),
    }
    for dt in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"):
        info = np.iinfo(dt)
        out[dt] = rng.integers(info.min, info.max, size=(2, 2), dtype=dt, endpoint=True)
    return out


@pytest.mark.mindspore
@pytest.mark.parametrize("crc", [False, True])
def test_mindspore_loads_what_we_save(tmp_cwd, ms_oracle_mod, crc):
    arrays = _arrays()
    ms.save_checkpoint({k: ms.Parameter(ms.Tensor(v), name=k) for k, v in arrays.items()},
                       "ours.ckpt", crc_check=crc,
                       append_dict={"epoch_num": 3, "lr": 0.5, "tag": "résumé"})
    got = {e["name"]: e for e in mso.load(os.path.abspath("ours.ckpt"), crc_check=crc)}
    assert list(got) == list(arrays) + ["epoch_num", "lr", "tag"]
    for k, v in arrays.items():
        assert got[k]["sha256"] == sha(v), k
        assert got[k]["shape"] == list(v.shape)
    assert got["tag"]["value"] == "résumé"
    assert got["epoch_num"]["dtype"] == "Int64" and got["lr"]["dtype"] == "Float32"


@pytest.mark.mindspore
def test_we_load_what_mindspore_saves(tmp_cwd, ms_oracle_mod):
    arrays = _arrays()
    entries = [mso.entry(k, v) for k, v in arrays.items() if k != "bf16"]  # bf16 NaN bits: see oracle
    entries.append(mso.fill_entry("filled", "Float32", (128, 257), "hash", seed=3))
    info = mso.save(os.path.abspath("theirs.ckpt"), entries, crc_check=True,
                    append_dict={"step_num": 9, "name": "x"})
    d = ms.load_checkpoint(info["path"], crc_check=True)
    for e in entries:
        assert sha(d[e["name"]].asnumpy()) == hashlib.sha256(mso.expected_bytes(e)).hexdigest()
    assert int(d["step_num"].asnumpy()) == 9 and d["name"] == "x"


@pytest.mark.mindspore
def test_safetensors_both_ways(tmp_cwd, ms_oracle_mod):
    arrays = {k: v for k, v in _arrays().items() if k != "bf16"}  # MindSpore+numpy2 cannot do bf16
    arrays["count"] = np.array(5, np.int64)
    ms.save_checkpoint({k: ms.Parameter(ms.Tensor(v), name=k) for k, v in arrays.items()},
                       "ours", format="safetensors", crc_check=True)
    got = {e["name"]: e for e in mso.load(os.path.abspath("ours.safetensors"),
                                          format="safetensors", crc_check=True)}
    assert sorted(got) == sorted(arrays)
    for k, v in arrays.items():
        assert got[k]["sha256"] == sha(v), k
    info = mso.save(os.path.abspath("theirs.safetensors"), [mso.entry(k, v) for k, v in arrays.items()],
                    format="safetensors", crc_check=True)
    d = ms.load_checkpoint(info["path"], format="safetensors", crc_check=True)
    assert all(sha(d[k].asnumpy()) == sha(v) for k, v in arrays.items())


@pytest.mark.mindspore
def test_mindspore_reads_our_zero_size_tensors(tmp_cwd, ms_oracle_mod):
    ms.save_checkpoint({"e": ms.Parameter(ms.Tensor(np.zeros((0, 3), np.float32)), name="e"),
                        "w": ms.Parameter(ms.Tensor(np.ones(2, np.float32)), name="w")}, "z.ckpt")
    got = {e["name"]: e for e in mso.load(os.path.abspath("z.ckpt"))}
    assert got["e"]["shape"] == [0, 3] and got["w"]["shape"] == [2]


@pytest.mark.mindspore
@pytest.mark.slow
def test_large_tensor_byte_identity(tmp_cwd, ms_oracle_mod):
    """A tensor > 512 MiB is sliced exactly as MindSpore slices it (byte chunks)."""
    big = mso.fill_entry("big", "UInt8", (5, 120_000_000), "hash", seed=5)
    tail = mso.fill_entry("tail", "Int32", (3,), "arange")
    info = mso.save(os.path.abspath("theirs.ckpt"), [big, tail])
    arr = mso.expected_array(big)
    ms.save_checkpoint({"big": ms.Parameter(ms.Tensor(arr), name="big"),
                        "tail": ms.Parameter(ms.Tensor(mso.expected_array(tail)), name="tail")},
                       "ours.ckpt")
    h = hashlib.sha256()
    with open("ours.ckpt", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    assert h.hexdigest() == info["sha256"]
    d = ms.load_checkpoint(info["path"])
    assert d["big"].shape == (5, 120_000_000) and np.array_equal(d["big"].asnumpy(), arr)
