"""The .ckpt codec: exact bytes, protobuf cross-check, round trips, malformed input."""

from __future__ import annotations

import io
import zlib

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mindckpt as ms
from mindckpt.errors import ChecksumError, FormatError
from mindckpt.formats import ckpt as C
from mindckpt.formats._wire import decode_varint, encode_varint
from mindckpt.formats._cursor import ByteReader
from mindckpt.formats.records import Record
from mindckpt.storage.local import LOCAL


class _Sink:
    def __init__(self):
        self.buf = io.BytesIO()

    def write(self, data):
        self.buf.write(bytes(data))


def encode(records, **kw) -> bytes:
    s = _Sink()
    C.write_ckpt(s, [Record(*r) for r in records], **kw)
    return s.buf.getvalue()


def decode(data: bytes, tmp_path, crc_check=False, select=lambda n: True, **kw):
    p = tmp_path / "x.ckpt"
    p.write_bytes(data)
    with LOCAL.open_read(str(p)) as src:
        r = ByteReader(source=src, track_crc=crc_check)
        return C.read_ckpt(r, str(p), select, crc_check=crc_check, **kw)


class _Stream:
    """A non-seekable source, like the decrypting one."""

    def __init__(self, data: bytes, step: int = 7):
        self.data, self.pos, self.step, self.size_hint = data, 0, step, len(data)

    def readinto(self, b):
        n = min(len(b), self.step, len(self.data) - self.pos)
        b[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


def decode_stream(data: bytes, crc_check=False):
    r = ByteReader(stream=_Stream(data), track_crc=crc_check)
    return C.read_ckpt(r, "<stream>", crc_check=crc_check)


# --------------------------------------------------------------------------- exact bytes


def test_first_record_of_plain_float_matches_spec_example():
    # format-spec.md §2.1: a (2,3) float16 tensor named f16
    a = np.array([-2.25, -1.5, -0.75, 0, 0.75, 1.5], np.float16).reshape(2, 3)
    want = bytes.fromhex(
        "0a22" "0a03663136" "121b" "0802" "0803" "1207466c6f61743136"
        "1a0c80c000be00ba0000003a003e"
    )
    assert encode([("f16", a)]) == want


def test_scalar_has_no_dims_field():
    want = bytes.fromhex("0a18" "0a05735f663332" "120f" "1207466c6f61743332" "1a040000c03f")
    assert encode([("s_f32", np.array(1.5, np.float32))]) == want


def test_str_is_utf32_with_one_zero_dim():
    data = encode([("s", "hello")])
    assert b"\x08\x00\x12\x03str\x1a\x14" + "hello".encode("utf-32-le") in data
    assert encode([("e", "")]).endswith(b"\x1a\x04\x00\x00\x00\x00")


def test_crc_trailer_is_crc32_of_records_big_endian():
    body = encode([("w", np.arange(6, dtype=np.float32))])
    with_crc = encode([("w", np.arange(6, dtype=np.float32))], crc=True)
    assert with_crc == body + b"crc_num" + zlib.crc32(body).to_bytes(10, "big")


def test_varint_round_trip_and_negative_is_ten_bytes():
    for v in [0, 1, 127, 128, 300, 2**31, 2**63 - 1]:
        enc = encode_varint(v)
        assert decode_varint(enc, 0) == (v, len(enc))
    assert len(encode_varint(-1)) == 10


# --------------------------------------------------------------------------- protobuf cross-check


def _checkpoint_class():
    pb = pytest.importorskip("google.protobuf")
    del pb
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="checkpoint_x.proto", package="mcx",
                                             syntax="proto2")
    F = descriptor_pb2.FieldDescriptorProto
    tp = fdp.message_type.add(name="TensorProto")
    tp.field.add(name="dims", number=1, label=F.LABEL_REPEATED, type=F.TYPE_INT64)
    tp.field.add(name="tensor_type", number=2, label=F.LABEL_REQUIRED, type=F.TYPE_STRING)
    tp.field.add(name="tensor_content", number=3, label=F.LABEL_REQUIRED, type=F.TYPE_BYTES)
    mp = fdp.message_type.add(name="MapTensorProto")
    mp.field.add(name="tensor", number=1, label=F.LABEL_REPEATED, type=F.TYPE_MESSAGE,
                 type_name=".mcx.TensorProto")
    ck = fdp.message_type.add(name="Checkpoint")
    val = ck.nested_type.add(name="Value")
    val.oneof_decl.add(name="value")
    val.field.add(name="tag", number=1, label=F.LABEL_REQUIRED, type=F.TYPE_STRING)
    val.field.add(name="tensor", number=2, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                  type_name=".mcx.TensorProto", oneof_index=0)
    val.field.add(name="maptensor", number=3, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                  type_name=".mcx.MapTensorProto", oneof_index=0)
    ck.field.add(name="value", number=1, label=F.LABEL_REPEATED, type=F.TYPE_MESSAGE,
                 type_name=".mcx.Checkpoint.Value")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("mcx.Checkpoint"))


def _pb_encode(Checkpoint, records):
    out = b""
    for name, arr, type_name in records:
        msg = Checkpoint()
        v = msg.value.add(tag=name)
        v.tensor.dims.extend(arr.shape)
        v.tensor.tensor_type = type_name
        v.tensor.tensor_content = np.ascontiguousarray(arr).tobytes()
        out += msg.SerializeToString()
    return out


def test_writer_matches_protobuf_library_bytes():
    Checkpoint = _checkpoint_class()
    rng = np.random.default_rng(1)
    recs = [
        ("a", rng.standard_normal((3, 4)).astype(np.float32), "Float32"),
        ("bb.cc", rng.integers(-9, 9, (2, 2, 2)).astype(np.int64), "Int64"),
        ("s", np.array(7, np.int16), "Int16"),
        ("ü" * 200, rng.standard_normal(300).astype(np.float64), "Float64"),
    ]
    assert encode([(n, a) for n, a, _ in recs]) == _pb_encode(Checkpoint, recs)


def test_reader_parses_protobuf_library_encodings_incl_packed_dims(tmp_path):
    Checkpoint = _checkpoint_class()
    msg = Checkpoint()
    for name, a in [("x", np.arange(6, dtype=np.int32).reshape(2, 3)), ("y", np.ones(4, np.uint8))]:
        v = msg.value.add(tag=name)
        v.tensor.dims.extend(a.shape)
        v.tensor.tensor_type = ms.tensor.dtype_of_numpy(a.dtype).name
        v.tensor.tensor_content = a.tobytes()
    data = msg.SerializeToString()  # one message holding several values
    out = decode(data, tmp_path)
    assert out["x"].array.tolist() == [[0, 1, 2], [3, 4, 5]]
    # packed dims (field 1 as LEN) are accepted; an unknown field (99, varint) only on request
    tensor = b"\x0a\x02\x02\x03" + b"\x12\x05Int32" + b"\x1a\x18" + np.arange(6, dtype=np.int32).tobytes()
    value = b"\x0a\x01p" + b"\x98\x06\x05" + b"\x12" + bytes([len(tensor)]) + tensor
    blob = b"\x0a" + bytes([len(value)]) + value
    with pytest.raises(FormatError, match=r"unknown protobuf field 99 .* at byte 5.*unknown_fields='skip'"):
        decode(blob, tmp_path)
    out = decode(blob, tmp_path, unknown_fields="skip")
    assert out["p"].array.shape == (2, 3)
    packed = b"\x0a\x01p" + b"\x12" + bytes([len(tensor)]) + tensor
    assert decode(b"\x0a" + bytes([len(packed)]) + packed, tmp_path)["p"].array.shape == (2, 3)
    # and the protobuf library parses what we write
    parsed = Checkpoint.FromString(encode([("q", np.arange(3, dtype=np.float32))], crc=False))
    assert parsed.value[0].tag == "q" and list(parsed.value[0].tensor.dims) == [3]


# --------------------------------------------------------------------------- round trips

DTYPES = [np.float16, np.float32, np.float64, ml_dtypes.bfloat16, np.int8, np.int16, np.int32,
          np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.bool_]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dtype=st.sampled_from(DTYPES),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    data=st.data(),
    crc=st.booleans(),
    stream=st.booleans(),
)
def test_round_trip_identity(tmp_path, dtype, shape, data, crc, stream):
    n = int(np.prod(shape))
    raw = data.draw(st.binary(min_size=n * np.dtype(dtype).itemsize,
                              max_size=n * np.dtype(dtype).itemsize))
    if dtype is np.bool_:
        raw = bytes(b & 1 for b in raw)
    arr = np.frombuffer(raw, dtype=dtype).reshape(shape)
    name = data.draw(st.text(max_size=12))
    blob = encode([(name, arr), ("tail", "end")], crc=crc)
    out = decode_stream(blob, crc) if stream else decode(blob, tmp_path, crc)
    got = out[name].array
    assert got.shape == arr.shape and got.dtype == arr.dtype
    assert got.tobytes() == arr.tobytes()
    assert out["tail"] == "end"


def test_non_contiguous_and_big_endian_inputs_are_written_in_c_order(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.arange(5, dtype=">i4")
    out = decode(encode([("t", a.T), ("s", a[:, ::2]), ("b", b)]), tmp_path)
    assert np.array_equal(out["t"].array, a.T)
    assert np.array_equal(out["s"].array, a[:, ::2])
    assert out["b"].array.tolist() == list(range(5))


def test_zero_size_tensors_keep_their_shape(tmp_path):
    out = decode(encode([("e1", np.zeros((0,), np.float32)), ("e2", np.zeros((0, 3), np.int8))]),
                 tmp_path)
    assert out["e1"].array.shape == (0,)
    assert out["e2"].array.shape == (0, 3)


def test_dims_zero_with_one_element_reads_as_scalar_like_mindspore(tmp_path):
    content = np.array(5, np.int64).tobytes()
    blob = C._header(b"k", (0,), b"Int64", 8) + content
    assert decode(blob, tmp_path)["k"].array.shape == ()


@pytest.mark.parametrize("split", ["bytes", "rows"])
def test_slicing_rules_and_merge(tmp_path, monkeypatch, split):
    monkeypatch.setattr(C, "SLICE_BYTES", 64)
    a = np.arange(5 * 30, dtype=np.uint8).reshape(5, 30)  # 150 bytes
    if split == "rows":  # rows rule triggers above 512 MiB only: test the cut directly
        parts = np.array_split(a, 3)
        blob = b"".join(C._header(b"w", a.shape, b"UInt8", p.nbytes) + p.tobytes() for p in parts)
    else:
        blob = encode([("w", a)])
        assert blob.count(b"\x0a\x01w") == 3  # 64 + 64 + 22 bytes
    assert np.array_equal(decode(blob, tmp_path)["w"].array, a)
    assert np.array_equal(decode_stream(blob)["w"].array, a)


def test_rows_split_matches_mindspore_rule_for_large_arrays():
    # (5, 120000000) uint8 -> 3 rows + 2 rows (format-spec §5.1); checked without allocating
    class Fake:
        ndim, shape, nbytes = 2, (5, 120_000_000), 600_000_000
    k = int(np.ceil(Fake.nbytes / C.SLICE_BYTES))
    assert k == 2
    assert [len(p) for p in np.array_split(np.empty((5, 1)), k)] == [3, 2]


def test_empty_trailing_slice_is_accepted(tmp_path):
    a = np.arange(8, dtype=np.uint8).reshape(1, 8)
    blob = C._header(b"w", a.shape, b"UInt8", 8) + a.tobytes() + C._header(b"w", a.shape, b"UInt8", 0)
    assert np.array_equal(decode(blob, tmp_path)["w"].array, a)


def test_non_adjacent_repeat_overwrites_but_keeps_first_position(tmp_path):
    one = encode([("a", np.array(1, np.int32)), ("b", np.array(2, np.int32))])
    two = encode([("a", np.array(3, np.int32))])
    out = decode(one + two, tmp_path)
    assert list(out) == ["a", "b"] and int(out["a"].array) == 3


def test_crc_lookalike_data_is_not_a_trailer(tmp_path):
    a = np.frombuffer(b"xxxx" + b"crc_num" + b"\x00" * 10, np.uint8)
    out = decode(encode([("u", a)]), tmp_path)
    assert out["u"].array.tobytes() == a.tobytes()


def test_select_skips_payloads(tmp_path):
    blob = encode([("a.w", np.ones(3, np.float32)), ("b.w", np.ones(2, np.float32))])
    out = decode(blob, tmp_path, select=lambda n: n.startswith("b"))
    assert list(out) == ["b.w"]


# --------------------------------------------------------------------------- malformed input


def _good():
    return encode([("w", np.arange(6, dtype=np.float32).reshape(2, 3)),
                   ("b", np.arange(3, dtype=np.int64)), ("s", "text")], crc=True)


def _record_bounds(blob):
    bounds, pos = [0], 0
    body = blob[:-17]
    while pos < len(body):
        n, p = decode_varint(body, pos + 1)
        pos = p + n
        bounds.append(pos)
    return bounds


def test_truncation_at_every_byte_raises_or_is_detected_by_crc(tmp_path):
    blob = _good()
    bounds = set(_record_bounds(blob))
    for cut in range(1, len(blob)):
        data = blob[:cut]
        if cut in bounds:
            # a cut between records: only the CRC (crc_check=True) can tell
            with pytest.raises(ChecksumError, match="does not contain a crc"):
                decode(data, tmp_path, crc_check=True)
            continue
        with pytest.raises(FormatError) as ei:
            decode(data, tmp_path)
        assert "x.ckpt" in str(ei.value)


@pytest.mark.parametrize("pos", range(0, 120, 3))
def test_flipped_bytes_are_detected_with_crc(tmp_path, pos):
    blob = bytearray(_good())
    if pos >= len(blob) - 17:
        pytest.skip("past the body")
    blob[pos] ^= 0x40
    with pytest.raises((FormatError, ChecksumError)):
        decode(bytes(blob), tmp_path, crc_check=True)


def test_bad_crc_value_raises_checksum_error(tmp_path):
    blob = bytearray(_good())
    blob[-1] ^= 1
    with pytest.raises(ChecksumError, match="crc check is failed"):
        decode(bytes(blob), tmp_path, crc_check=True)
    decode(bytes(blob), tmp_path, crc_check=False)  # not verified unless asked, as MindSpore


@pytest.mark.parametrize(
    "blob, match",
    [
        (b"\x0a" + encode_varint(1 << 40), "claims"),                      # huge record length
        (C._header(b"w", (1 << 40,), b"UInt8", 4) + b"abcd", "needs"),     # huge shape
        (C._header(b"w", (3,), b"Int16", 2) + b"\x01\x00", "Int16 needs 6 bytes"),  # short
        (C._header(b"w", (1,), b"Int16", 4) + b"\x01\x00\x02\x00", "needs 2"),      # long
        (C._header(b"w", (2,), b"Complex64", 16) + bytes(16), "unknown tensor type 'Complex64'"),
        (C._header(b"w", (2,), b"float32", 8) + bytes(8), "unknown tensor type"),
        (C._header(b"\xff\xfe", (1,), b"UInt8", 1) + b"\x01", "not valid UTF-8"),
        (C._header(b"w", (2**64 - 1,), b"UInt8", 0), "negative dimension"),
        (encode([("w", np.ones(2, np.uint8))]) + b"junk", "claims|neither a record|unknown protobuf field"),
        (encode([("w", np.ones(2, np.uint8))]) + b"\x0a\x05ab", "claims|cut short"),
        (b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "varint"),
    ],
)
def test_malformed_table(tmp_path, blob, match):
    with pytest.raises(FormatError, match=match) as ei:
        decode(blob, tmp_path)
    assert "x.ckpt" in str(ei.value)
    with pytest.raises(FormatError, match=match):
        decode_stream(blob)


def test_oversized_length_does_not_allocate(tmp_path):
    # a 100 TB shape in a 40-byte file is refused before np.empty is called
    blob = C._header(b"w", (10**14,), b"Float64", 0)
    with pytest.raises(FormatError, match="needs"):
        decode(blob, tmp_path)
