"""The safetensors variant, cross-checked against the safetensors package."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest

import mindckpt as ms
from mindckpt.errors import ChecksumError, FormatError
from mindckpt.formats.safetensors import ms_crc

st_numpy = pytest.importorskip("safetensors.numpy")


def P(a):
    return ms.Parameter(ms.Tensor(np.asarray(a)))


ARRAYS = {
    "w": np.arange(6, dtype=np.float32).reshape(2, 3),
    "epoch": np.array(5, np.int64),
    "flag": np.array(True),
    "h": np.ones(3, np.float16),
    "u": np.arange(4, dtype=np.uint16),
    "z": np.zeros((0, 2), np.float32),
}


def test_library_reads_ours_and_layout_matches_library(tmp_cwd):
    ms.save_checkpoint({k: P(v) for k, v in ARRAYS.items()}, "a", format="safetensors")
    got = st_numpy.load_file("a.safetensors")
    for k, v in ARRAYS.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v)
    st_numpy.save_file(ARRAYS, "lib.safetensors", metadata={"format": "ms"})
    ours = open("a.safetensors", "rb").read()
    lib = open("lib.safetensors", "rb").read()
    assert ours[8:] .split(b"}", 1)  # well-formed
    h_ours = json.loads(ours[8:8 + int.from_bytes(ours[:8], "little")])
    h_lib = json.loads(lib[8:8 + int.from_bytes(lib[:8], "little")])
    assert {k: v for k, v in h_ours.items() if k != "__metadata__"} == \
           {k: v for k, v in h_lib.items() if k != "__metadata__"}
    assert h_ours["__metadata__"] == {"format": "ms"}
    assert ours[-sum(a.nbytes for a in ARRAYS.values()):] == lib[-sum(a.nbytes for a in ARRAYS.values()):]


def test_we_read_library_files_sorted_by_name(tmp_cwd):
    st_numpy.save_file(ARRAYS, "lib.safetensors")
    d = ms.load_checkpoint("lib.safetensors", format="safetensors")
    assert list(d) == sorted(ARRAYS)
    for k, v in ARRAYS.items():
        assert np.array_equal(d[k].asnumpy(), v)


def test_bfloat16_and_int4(tmp_cwd):
    bf = np.array([1.5, -2.0], ml_dtypes.bfloat16)
    q = ms.Tensor(np.array([1, 2], np.int8), dtype=ms.qint4x2)
    ms.save_checkpoint([{"name": "bf", "data": ms.Tensor(bf)}, {"name": "q", "data": q}], "b",
                       format="safetensors")
    d = ms.load_checkpoint("b.safetensors", format="safetensors")
    assert d["bf"].dtype == ms.bfloat16 and d["bf"].asnumpy().tobytes() == bf.tobytes()
    assert d["q"].dtype == ms.qint4x2


def test_crc_metadata_follows_mindspore_rule(tmp_cwd):
    ms.save_checkpoint({k: P(v) for k, v in ARRAYS.items()}, "c", format="safetensors",
                       crc_check=True, remove_redundancy=True)
    with open("c.safetensors", "rb") as f:
        raw = f.read()
    meta = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])["__metadata__"]
    assert meta["remove_redundancy"] == "True"
    # MindSpore feeds bytes(array): a 0-d int64 5 contributes five zero bytes
    import zlib
    crc = 0
    for k in sorted(ARRAYS):
        crc = zlib.crc32(k.encode(), crc)
        crc = zlib.crc32(bytes(ARRAYS[k]) if ARRAYS[k].ndim == 0 else ARRAYS[k].tobytes(), crc)
    assert meta["crc_num"] == str(crc) == str(ms_crc(ARRAYS.items()))
    ms.load_checkpoint("c.safetensors", format="safetensors", crc_check=True)


def test_crc_mismatch_and_missing_crc(tmp_cwd):
    ms.save_checkpoint({"w": P(np.ones(4, np.float32))}, "c", format="safetensors", crc_check=True)
    raw = bytearray(open("c.safetensors", "rb").read())
    raw[-1] ^= 0x01
    open("bad.safetensors", "wb").write(raw)
    with pytest.raises(ChecksumError, match="the crc check has failed"):
        ms.load_checkpoint("bad.safetensors", format="safetensors", crc_check=True)
    ms.save_checkpoint({"w": P(np.ones(4, np.float32))}, "n", format="safetensors")
    with pytest.raises(ChecksumError, match="does not contain a crc"):
        ms.load_checkpoint("n.safetensors", format="safetensors", crc_check=True)


def test_str_values_refused_with_a_clear_error(tmp_cwd):
    with pytest.raises(TypeError, match="str values are not supported"):
        ms.save_checkpoint({"s": "x"}, "s", format="safetensors")


def _header_file(header: dict, data: bytes, compact: bool = False) -> bytes:
    # compact: the canonical layout (the pattern path); spaced: the json.loads path
    blob = json.dumps(header, separators=(",", ":") if compact else None).encode()
    return len(blob).to_bytes(8, "little") + blob + data


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"\x01\x02", "fewer than the 8-byte"),
        ((10**12).to_bytes(8, "little") + b"{}", "exceeds"),
        (b"\x04\x00\x00\x00\x00\x00\x00\x00{xx}", "not valid JSON"),
    ],
)
def test_malformed_safetensors(tmp_cwd, raw, match):
    open("m.safetensors", "wb").write(raw)
    with pytest.raises(FormatError, match=match) as ei:
        ms.load_checkpoint("m.safetensors", format="safetensors")
    assert "m.safetensors" in str(ei.value)


def _u8(shape, offsets):
    return {"w": {"dtype": "U8", "shape": shape, "data_offsets": offsets}}


@pytest.mark.parametrize(
    "header, data, match",
    [
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, "outside the data"),
        ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, b"\0" * 16, "needs 12"),
        ({"w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 2, "unsupported dtype"),
        (_u8([2], [0, 2]), b"\0" * 3, "follow the last tensor"),
        ({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
          "b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}}, b"\0" * 3, "overlapping"),
        (_u8([-1], [0, 0]), b"", "invalid shape"),
        (_u8([True], [0, 1]), b"\0", "invalid shape"),
        (_u8([1.0], [0, 1]), b"\0", "invalid shape"),
        (_u8([1] * 65, [0, 1]), b"\0", "invalid shape"),
        (_u8([2**62 + 1], [0, 1]), b"\0", "invalid shape"),
        (_u8([1], [0, 1.0]), b"\0", "outside the data"),
    ],
)
@pytest.mark.parametrize("compact", [False, True], ids=["json-path", "canonical-path"])
def test_malformed_safetensors_headers(tmp_cwd, header, data, match, compact):
    # compact JSON is what writers produce (the pattern path); spaced JSON takes json.loads
    open("m.safetensors", "wb").write(_header_file(header, data, compact))
    with pytest.raises(FormatError, match=match) as ei:
        ms.load_checkpoint("m.safetensors", format="safetensors")
    assert "m.safetensors" in str(ei.value)


# --------------------------------------------------------------------------- the header parser
def test_canonical_parser_agrees_with_json():
    """The pattern path (headers as the writers lay them out) gives exactly what json.loads
    gives, and anything it does not recognise goes to json.loads (None)."""
    from hypothesis import given, settings
    from hypothesis import strategies as hs

    from mindckpt.formats import safetensors as fst

    names = hs.text(hs.characters(blacklist_categories=("Cs",)), max_size=12)
    entry = hs.fixed_dictionaries({
        "dtype": hs.sampled_from(["F32", "BF16", "U8", "I64", "BOOL", "X9"]),
        "shape": hs.lists(hs.integers(0, 2**63), max_size=66),
        "data_offsets": hs.lists(hs.integers(0, 10**20), min_size=2, max_size=2),
    })
    meta = hs.none() | hs.dictionaries(hs.text(max_size=5), hs.text(max_size=5), max_size=3)

    @settings(max_examples=300, deadline=None)
    @given(hs.dictionaries(names, entry, max_size=6), meta, hs.booleans(), hs.booleans())
    def check(header, metadata, meta_first, spaced):
        doc = dict(header)
        if metadata is not None:
            doc = {"__metadata__": metadata, **doc} if meta_first else {**doc, "__metadata__": metadata}
        text = json.dumps(doc, ensure_ascii=False,
                          separators=(", ", ": ") if spaced else (",", ":")) + " " * 3
        fast = fst._parse_canonical(text)
        if fast is None:
            return
        entries, got_meta = fast
        want, want_meta = fst._parse_json(text, "x")
        assert got_meta == want_meta
        assert list(entries) == list(want)
        for k, (code, shape_text, start, end) in entries.items():
            w = want[k]
            assert (code, start, end) == (w[0], w[2], w[3])
            assert ([int(d) for d in shape_text.split(",")] if shape_text else []) == w[1]

    check()
    # what the writers write always takes the pattern path
    head, _ = fst.encode_header([("a", "F32", (2, 3), 24), ("b\u00e9", "U8", (), 1)],
                                {"format": "ms"})
    assert fst._parse_canonical(head[8:].decode()) is not None


def test_canonical_parser_declines_escapes_and_other_layouts():
    from mindckpt.formats import safetensors as fst

    e = '{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'
    assert fst._parse_canonical('{"a":' + e + "}") is not None
    for text in ['{"a\\"b":' + e + "}",  # an escape in the name
                 '{"a": ' + e + "}",  # other spacing
                 '{"a":{"shape":[1],"dtype":"F32","data_offsets":[0,4]}}',  # field order
                 '{"a":' + e + "} x",  # trailing garbage
                 '{"a":' + e + ',"__metadata__":{},"__metadata__":{}}',  # metadata twice
                 '{"a":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}}']:  # not JSON
        assert fst._parse_canonical(text) is None, text


def test_scan_into_matches_the_index(tmp_cwd):
    """The one-pass scan (what load_checkpoint uses) checks and reports exactly what the
    index holds, for the selected names, Int4 included."""
    from mindckpt.formats import safetensors as fst
    from mindckpt.storage.local import LOCAL

    data = dict(ARRAYS, q=ms.Parameter(ms.Tensor(np.arange(6, dtype=np.int8), ms.qint4x2)))
    ms.save_checkpoint(data, "s.safetensors", format="safetensors", crc_check=True)
    with LOCAL.open_read("s.safetensors") as src:
        index = fst.scan_safetensors(src, "s.safetensors")
        meta, got = fst.scan_safetensors_into(
            src, "s.safetensors", lambda *a: a, select=lambda n: n != "w")
    assert meta.metadata == index.metadata and meta.crc == index.crc and not meta.entries
    want = {e.name: (e.name, e.dtype, e.shape, e.offset, e.length) for e in index
            if e.name != "w"}
    assert got == want and list(got) == list(want)
    assert got["q"][1] is ms.qint4x2
