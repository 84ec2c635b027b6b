"""Self-consistency of the committed golden files (tests/golden/files, made by make_golden.py).

Part 1 needs neither MindSpore nor mindckpt: hashes, raw protobuf records, CRC trailers,
independent decryption (cryptography) and safetensors headers against manifest.json.
Part 2 (marked mindspore) reloads every file with real MindSpore through the oracle and
compares with the manifest.
"""
import hashlib
import json
import os
import struct
import sys
import zlib
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FILES = HERE / "files"
MANIFEST = json.loads((FILES / "manifest.json").read_text(encoding="utf-8"))
ALL = sorted(MANIFEST["files"])
MAGIC = {"AES-GCM": 0x7F3A5ED8, "AES-CBC": 0x7F3A5ED9, "SM4-CBC": 0x7F3A5EDA}


def _varint(buf, i):
    shift = res = 0
    while True:
        c = buf[i]
        i += 1
        res |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return res, i


def _fields(buf):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        if key & 7 == 0:
            v, i = _varint(buf, i)
        else:
            assert key & 7 == 2
            n, i = _varint(buf, i)
            v, i = buf[i:i + n], i + n
        yield key >> 3, v


def _records(body):
    out = []
    for fno, val in _fields(body):
        assert fno == 1
        rec = {"name": None, "dtype": None, "dims": [], "content": b""}
        for f2, v2 in _fields(val):
            if f2 == 1:
                rec["name"] = bytes(v2).decode("utf-8")
            elif f2 == 2:
                for f3, v3 in _fields(v2):
                    if f3 == 1:
                        rec["dims"].append(v3)
                    elif f3 == 2:
                        rec["dtype"] = bytes(v3).decode()
                    elif f3 == 3:
                        rec["content"] = bytes(v3)
        out.append(rec)
    return out


def _decrypt(data, key, mode):
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    out, i = b"", 0
    while i < len(data):
        magic, = struct.unpack_from("<I", data, i)
        assert magic == MAGIC[mode]
        if mode == "AES-GCM":
            tag = data[i + 4:i + 20]
            L, ivlen = struct.unpack_from("<ii", data, i + 20)
            iv = data[i + 28:i + 44]
            clen, = struct.unpack_from("<i", data, i + 44)
            ct = data[i + 48:i + 48 + clen]
            assert ivlen == 16 and L == 24 + clen
            out += AESGCM(key).decrypt(iv[:12], ct + tag, None)
            i += 48 + clen
        else:
            L, ivlen = struct.unpack_from("<ii", data, i + 4)
            iv = data[i + 12:i + 28]
            clen, = struct.unpack_from("<i", data, i + 28)
            ct = data[i + 32:i + 32 + clen]
            assert ivlen == 16 and L == 24 + clen and clen % 16 == 0
            alg = algorithms.AES(key) if mode == "AES-CBC" else algorithms.SM4(key)
            dec = Cipher(alg, modes.CBC(iv)).decryptor()
            padded = dec.update(ct) + dec.finalize()
            unp = padding.PKCS7(128).unpadder()
            out += unp.update(padded) + unp.finalize()
            i += 32 + clen
    return out


def test_provenance_and_size_budget():
    prov = MANIFEST["provenance"]
    assert prov["mindspore"] == "2.10.0"
    total = sum(p.stat().st_size for p in FILES.iterdir())
    assert total < 2_000_000
    on_disk = {p.name for p in FILES.iterdir()} - {"manifest.json"}
    assert on_disk == set(ALL)


@pytest.mark.parametrize("fname", ALL)
def test_file_matches_manifest(fname):
    m = MANIFEST["files"][fname]
    data = (FILES / fname).read_bytes()
    assert len(data) == m["size"]
    assert hashlib.sha256(data).hexdigest() == m["sha256"]
    if m["format"] == "safetensors":
        n, = struct.unpack_from("<Q", data, 0)
        header = json.loads(data[8:8 + n])
        assert header == m["safetensors"]["header"]
        by_name = {e["name"]: e for e in m["entries"]}
        for name, h in header.items():
            if name == "__metadata__":
                continue
            s, e = h["data_offsets"]
            assert hashlib.sha256(data[8 + n + s:8 + n + e]).hexdigest() == by_name[name]["sha256"]
        return
    body = data
    if m["crc"]:
        assert data[-17:].hex() == m["crc"]["trailer_hex"]
        body = data[:-17]
        if not m["encryption"]:
            assert zlib.crc32(body) == m["crc"]["crc32"]
        else:
            assert data[-17:] == b"crc_num" + bytes(10)
    if m["encryption"]:
        enc = m["encryption"]
        plain = _decrypt(body, bytes.fromhex(enc["key_hex"]), enc["mode"])
        assert plain == (FILES / enc["plaintext_of"]).read_bytes()
        return
    recs = _records(body)
    want = m["records"]
    assert [(r["name"], r["dtype"], r["dims"]) for r in recs] == \
        [(w["name"], w["dtype"], w["dims"]) for w in want]
    for r, w in zip(recs, want, strict=False):
        assert hashlib.sha256(r["content"]).hexdigest() == w["sha256"]
        if "hex" in w:
            assert r["content"].hex() == w["hex"]
    if m["entries"] is not None:  # loaded dict == records here (no slicing/duplicates in file)
        assert [e["name"] for e in m["entries"]] == [r["name"] for r in recs]


@pytest.mark.mindspore
def test_mindspore_loads_goldens_as_manifest():
    if str(HERE.parent / "interop") not in sys.path:
        sys.path.insert(0, str(HERE.parent / "interop"))
    import ms_oracle as mso

    mso.require_mindspore()
    reqs = []
    for fname in ALL:
        m = MANIFEST["files"][fname]
        op = "load_error" if m["load_error"] else "load"
        reqs.append({"op": op, "path": str(FILES / fname), "inline_limit": 4096,
                     "kwargs": m["load_kwargs"]})
    replies = mso.batch(reqs)
    for fname, rep in zip(ALL, replies, strict=False):
        m = MANIFEST["files"][fname]
        assert rep["ok"], (fname, rep)
        if m["load_error"]:
            assert rep["raised"] and rep["error_type"] == m["load_error"]["error_type"]
            assert rep["error"] == m["load_error"]["error"].replace(
                "{path}", os.path.realpath(FILES / fname)), fname
            continue
        keys = ("name", "dtype", "shape", "nbytes", "sha256", "hex", "value")
        got = [{k: e[k] for k in keys if k in e} for e in rep["entries"]]
        assert got == m["entries"], fname
