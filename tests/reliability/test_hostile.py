"""Hostile bytes raise FormatError naming the file and the entry (issue 13 points 4-6), kept
as regression cases; unknown protobuf fields; the safetensors header checksum."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

import mindckpt as ms
from mindckpt.errors import ChecksumError, FormatError
from mindckpt.formats import ckpt as C
from mindckpt.formats import safetensors as S
from mindckpt.formats._cursor import ByteReader
from mindckpt.formats._wire import encode_varint
from mindckpt.pipeline import open_file
from mindckpt.storage.local import LOCAL

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "golden", "files")


def record(tag: bytes, dims, type_name: bytes, content: bytes, extra: bytes = b"") -> bytes:
    tensor = b"".join(b"\x08" + encode_varint(d) for d in dims)
    tensor += b"\x12" + encode_varint(len(type_name)) + type_name
    tensor += b"\x1a" + encode_varint(len(content)) + content
    value = b"\x0a" + encode_varint(len(tag)) + tag + extra
    value += b"\x12" + encode_varint(len(tensor)) + tensor
    return b"\x0a" + encode_varint(len(value)) + value


def st_file(header: dict | bytes, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def load(tmp_path, blob: bytes, name: str, **kw):
    p = tmp_path / name
    p.write_bytes(blob)
    return ms.load_checkpoint(str(p), **kw), str(p)


# --------------------------------------------------------------------------- point 4

CKPT_CASES = {
    # a str entry whose UTF-32 holds a value above U+10FFFF (numpy: SystemError)
    "str_above_unicode": (record(b"s", [0], b"str", (0x110000).to_bytes(4, "little")), "s"),
    "str_surrogate_ok_but_huge": (record(b"s", [0], b"str", b"\xff\xff\xff\xff"), "s"),
    "str_not_whole_units": (record(b"s", [0], b"str", b"abc"), "s"),
    # zero-size tensors with a huge dimension (numpy: "array is too big")
    "zero_size_huge_dim": (record(b"z", [0, 1 << 62], b"Float32", b""), "z"),
    "zero_size_two_huge": (record(b"z", [0, 1 << 40, 1 << 40], b"Float32", b""), "z"),
    # more than 64 dimensions (numpy: "maximum supported dimension")
    "dims_65": (record(b"d", [1] * 65, b"Float32", b"\0" * 4), "d"),
    "dims_65_zero": (record(b"d", [0] * 65, b"Float32", b""), "d"),
    "negative_dim": (record(b"n", [(1 << 64) - 1], b"Float32", b""), "n"),
}


@pytest.mark.parametrize("case", list(CKPT_CASES))
def test_hostile_ckpt_records_raise_format_error_naming_file_and_entry(tmp_path, case):
    blob, entry = CKPT_CASES[case]
    with pytest.raises(FormatError) as ei:
        load(tmp_path, blob, "h.ckpt")
    msg = str(ei.value)
    assert "h.ckpt" in msg and f"'{entry}'" in msg, msg
    if not case.startswith("str_"):  # the scan alone refuses them too
        with pytest.raises(FormatError):
            with open_file(LOCAL, str(tmp_path / "h.ckpt")) as r:
                r.index  # noqa: B018


def test_read_entry_of_a_corrupt_str_raises_format_error(tmp_path):
    p = tmp_path / "h.ckpt"
    p.write_bytes(CKPT_CASES["str_above_unicode"][0])
    with open_file(LOCAL, str(p)) as r:
        with pytest.raises(FormatError, match="'s'"):
            r.read_entry("s")


def test_str_entries_decode_like_mindspore(tmp_path):
    for text in ["", "abc", "naïve ✓ 𝄞", "trailing\x00"]:
        got, _ = load(tmp_path, record(b"s", [0], b"str", np.array(text).tobytes()) +
                      record(b"w", [1], b"Float32", b"\0" * 4), "s.ckpt")
        assert got["s"] == str(np.array(text)), text
    assert C.decode_str(np.array("\ud800x").tobytes(), "f", "s") == "\ud800x"


def _st_entry(dtype="F32", shape=(1,), offsets=(0, 4)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


ST_CASES = {
    "zero_size_huge_dim": ({"z": _st_entry(shape=(0, 1 << 62), offsets=(0, 0))}, b"", "z"),
    "zero_size_two_huge": ({"z": _st_entry(shape=(0, 1 << 40, 1 << 40), offsets=(0, 0))}, b"", "z"),
    "dims_65": ({"d": _st_entry(shape=(1,) * 65)}, b"\0" * 4, "d"),
    "dims_65_zero": ({"d": _st_entry(shape=(0,) * 65, offsets=(0, 0))}, b"", "d"),
    "negative_dim": ({"n": _st_entry(shape=(-1,), offsets=(0, 0))}, b"", "n"),
    "bool_dim": ({"b": _st_entry(shape=(True,))}, b"\0" * 4, "b"),
    "float_dim": ({"f": _st_entry(shape=(1.0,))}, b"\0" * 4, "f"),
    "dtype_not_str": ({"t": _st_entry(dtype=[1])}, b"\0" * 4, "t"),
    "offsets_not_pair": ({"o": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}, b"\0" * 4, "o"),
    "offsets_past_end": ({"o": _st_entry(offsets=(0, 8))}, b"\0" * 4, "o"),
    "entry_not_object": ({"e": 5}, b"", "e"),
}


@pytest.mark.parametrize("case", list(ST_CASES))
def test_hostile_safetensors_headers_raise_format_error(tmp_path, case):
    header, data, entry = ST_CASES[case]
    with pytest.raises(FormatError) as ei:
        load(tmp_path, st_file(header, data), "h.safetensors", format="safetensors")
    msg = str(ei.value)
    assert "h.safetensors" in msg and f"'{entry}'" in msg, msg


@pytest.mark.parametrize("raw", [
    b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # RecursionError in json.loads
    b'{"a":' + b"[" * 9 + b"0" + b"]" * 9 + b"}",  # just past the depth limit
    b'{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":1}}}}}}}}}',
    b"[" * 5_000_000,  # unbalanced and deep
])
def test_deeply_nested_safetensors_json_is_refused_before_parsing(tmp_path, raw):
    with pytest.raises(FormatError, match="nests deeper than 8 levels"):
        load(tmp_path, st_file(raw), "deep.safetensors", format="safetensors")


def test_nesting_check_ignores_brackets_inside_strings(tmp_path):
    name = "w" + "[{" * 20 + '\\"'
    blob = st_file(b'{"' + name.encode() + b'":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
                   b"\0" * 4)
    got, _ = load(tmp_path, blob, "ok.safetensors", format="safetensors")
    assert list(got) == [json.loads(f'"{name}"')]


# --------------------------------------------------------------------------- point 5

def test_flipped_record_key_is_an_error_not_a_lost_tensor(tmp_path):
    ms.save_checkpoint({"a": ms.Parameter(ms.Tensor(np.ones(3, np.float32))),
                        "b": ms.Parameter(ms.Tensor(np.zeros(2, np.int32)))}, str(tmp_path / "k"))
    blob = bytearray((tmp_path / "k.ckpt").read_bytes())
    assert blob[0] == 0x0A
    blob[0] = 0x12  # field 2, LEN: a protobuf reader (and MindSpore) skips the whole record
    with pytest.raises(FormatError) as ei:
        load(tmp_path, bytes(blob), "flip.ckpt")
    msg = str(ei.value)
    assert "flip.ckpt" in msg and "at byte 0" in msg and "unknown_fields='skip'" in msg
    p = str(tmp_path / "flip.ckpt")
    with LOCAL.open_read(p) as src:
        got = C.read_ckpt(ByteReader(source=src), p, unknown_fields="skip")
    assert list(got) == ["b"]  # what skipping costs: tensor 'a' is gone
    with LOCAL.open_read(p) as src:
        assert list(C.scan_ckpt(ByteReader(source=src), p, unknown_fields="skip").entries) == ["b"]
    with pytest.raises(ValueError, match="unknown_fields"):
        with LOCAL.open_read(p) as src:
            C.read_ckpt(ByteReader(source=src), p, unknown_fields="ignore")


@pytest.mark.parametrize("where", ["record", "tensor"])
def test_unknown_fields_inside_records_raise_by_default(tmp_path, where):
    extra = b"\x20\x01"  # field 4, varint
    if where == "record":
        blob = record(b"w", [1], b"Float32", b"\0" * 4, extra=extra)
    else:
        tensor = b"\x08\x01" + extra + b"\x12\x07Float32" + b"\x1a\x04" + b"\0" * 4
        value = b"\x0a\x01w" + b"\x12" + encode_varint(len(tensor)) + tensor
        blob = b"\x0a" + encode_varint(len(value)) + value
    with pytest.raises(FormatError, match=f"unknown protobuf field 4 .*in a {where}.*'w'"):
        load(tmp_path, blob, "u.ckpt")


def test_golden_mindspore_files_have_no_unknown_fields():
    manifest = json.load(open(os.path.join(GOLDEN, "manifest.json")))
    seen = 0
    for name, info in manifest["files"].items():
        if info["format"] != "ckpt" or name == "enc_crc_aes_gcm_k16.ckpt":
            continue  # (that one MindSpore itself cannot load: a CRC trailer after the blocks)
        path = os.path.join(GOLDEN, name)
        enc = info["encryption"]
        kw = {"dec_key": bytes.fromhex(enc["key_hex"]), "dec_mode": enc["mode"]} if enc else {}
        with open_file(LOCAL, path, **kw) as r:  # the default: unknown fields raise
            if "records" in info and not name.startswith("duplicates"):
                assert len(r.index) == len(info["records"]), name
            r.read()
        seen += 1
    assert seen >= 15


# --------------------------------------------------------------------------- point 6

def _st_with_crc(tmp_path):
    d = {"w": ms.Parameter(ms.Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))),
         "i": ms.Parameter(ms.Tensor(np.arange(4, dtype=np.int32)))}
    ms.save_checkpoint(d, str(tmp_path / "c"), format="safetensors", crc_check=True)
    raw = (tmp_path / "c.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return raw, json.loads(raw[8:8 + n]), raw[8 + n:]


def test_header_checksum_is_written_with_crc_and_covers_the_entries(tmp_path):
    _raw, header, _data = _st_with_crc(tmp_path)
    meta = header["__metadata__"]
    entries = [(k, v["dtype"], v["shape"], *v["data_offsets"]) for k, v in header.items()
               if k != "__metadata__"]
    assert meta[S.HEADER_CRC_KEY] == str(S.header_crc(meta, entries))
    ms.save_checkpoint({"w": ms.Parameter(ms.Tensor(np.ones(2, np.float32)))},
                       str(tmp_path / "n"), format="safetensors")
    raw = (tmp_path / "n.safetensors").read_bytes()
    assert S.HEADER_CRC_KEY.encode() not in raw  # without crc_check: MindSpore's header only


@pytest.mark.parametrize("edit", ["dtype", "shape", "swap_offsets", "metadata"])
@pytest.mark.parametrize("crc_check", [False, True])
def test_header_edits_that_crc_num_misses_are_caught(tmp_path, edit, crc_check):
    _raw, header, data = _st_with_crc(tmp_path)
    if edit == "dtype":
        header["w"]["dtype"] = "I32"  # same size: crc_num still matches
    elif edit == "shape":
        header["w"]["shape"] = [3, 2]
    elif edit == "swap_offsets":  # both 4-byte-element tensors, so spans stay consistent
        header["w"]["shape"], header["i"]["shape"] = [4], [2, 3]
        header["w"]["data_offsets"], header["i"]["data_offsets"] = \
            header["i"]["data_offsets"], header["w"]["data_offsets"]
    else:
        header["__metadata__"]["remove_redundancy"] = "True"
    blob = st_file(json.dumps(header).encode(), data)
    with pytest.raises(ChecksumError, match=S.HEADER_CRC_KEY):
        load(tmp_path, blob, "e.safetensors", format="safetensors", crc_check=crc_check)
    p = tmp_path / "e.safetensors"
    with LOCAL.open_read(str(p)) as src:
        assert "w" in S.scan_safetensors(src, str(p), verify_header=False)


def test_header_checksum_survives_reserialization(tmp_path):
    _raw, header, data = _st_with_crc(tmp_path)
    meta = header.pop("__metadata__")
    shuffled = {"__metadata__": dict(reversed(list(meta.items()))), **dict(reversed(list(header.items())))}
    blob = st_file(json.dumps(shuffled, indent=2).encode(), data)
    got, _ = load(tmp_path, blob, "r.safetensors", format="safetensors", crc_check=True)
    assert sorted(got) == ["i", "w"]


@pytest.mark.mindspore
def test_mindspore_loads_files_with_the_header_checksum(tmp_path):
    import ms_oracle as mso

    mso.require_mindspore()
    _st_with_crc(tmp_path)
    path = str(tmp_path / "c.safetensors")
    for crc in (False, True):
        got = mso.load(path, format="safetensors", crc_check=crc)
        assert [(g["name"], g["dtype"], g["shape"]) for g in got] == \
            [("i", "Int32", [4]), ("w", "Float32", [2, 3])]
