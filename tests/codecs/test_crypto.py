"""Tests for mindckpt.codecs.crypto: framing, round trips, validation, tampering, MindSpore interop."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mindckpt.codecs import _blocks, crypto
from mindckpt.codecs._source import as_positional
from mindckpt.codecs.crypto import (
    BLOCK_SIZE,
    WRITE_BLOCK_SIZE,
    MODES,
    DecryptSource,
    EncryptSink,
    check_cipher_args,
    sniff_cipher,
)
from mindckpt.errors import DecryptionError

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "files"
SMALL = 4096  # block size for fast multi-block tests
KEYS = {16: bytes(range(16)), 24: bytes(range(100, 124)), 32: bytes(range(200, 232))}
MODE_KEYS = [(m, k) for m in MODES for k in crypto.KEY_LENGTHS[m]]


def encrypt(
    data: bytes, key: bytes, mode: str = "AES-GCM", *, block_size=SMALL, chunk=None
) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sink = EncryptSink(out, key, mode, block_size=block_size, workers=2)
    mv = memoryview(data)
    step = chunk or max(len(data), 1)
    for i in range(0, len(data), step):
        assert sink.write(mv[i : i + step]) == len(mv[i : i + step])
    sink.close()
    return out.getvalue()


def decrypt(raw: bytes, key: bytes, mode: str = "AES-GCM", *, path="t.ckpt", bufsize=None) -> bytes:
    src = DecryptSource(io.BytesIO(raw), key, mode, path=path, workers=2)
    try:
        if bufsize is None:
            return src.read()
        out = bytearray()
        buf = bytearray(bufsize)
        while n := src.readinto(buf):
            out += buf[:n]
        return bytes(out)
    finally:
        src.close()


def blocks_of(raw: bytes, mode: str = "AES-GCM") -> list[bytes]:
    infos = _blocks.scan_blocks(as_positional(io.BytesIO(raw)), mode, "x")
    return [raw[b.offset : b.data_offset + b.size] for b in infos]


def ms_style_encrypt(data: bytes, key: bytes, mode: str, block_size: int = BLOCK_SIZE) -> bytes:
    """Frame like MindSpore itself: 16 random IV bytes per block (GCM uses bytes 0-11)."""
    out = bytearray()
    for i in range(0, len(data), block_size):
        chunk = data[i : i + block_size]
        iv = os.urandom(16)
        if mode == "AES-GCM":
            enc = Cipher(algorithms.AES(key), modes.GCM(iv[:12])).encryptor()
            ct = enc.update(chunk) + enc.finalize()
            out += struct.pack(
                "<4s16sii16si", _blocks.MAGICS[mode], enc.tag, 24 + len(ct), 16, iv, len(ct)
            )
        else:
            pad = 16 - len(chunk) % 16
            alg = algorithms.AES(key) if mode == "AES-CBC" else algorithms.SM4(key)
            enc = Cipher(alg, modes.CBC(iv)).encryptor()
            ct = enc.update(chunk + bytes([pad]) * pad) + enc.finalize()
            out += struct.pack("<4sii16si", _blocks.MAGICS[mode], 24 + len(ct), 16, iv, len(ct))
        out += ct
    return bytes(out)


# ------------------------------------------------------------------------------------------
# validation and sniffing


@pytest.mark.parametrize(
    ("mode", "klen"),
    [
        ("AES-GCM", 8),
        ("AES-GCM", 15),
        ("AES-GCM", 17),
        ("AES-GCM", 64),
        ("AES-CBC", 0),
        ("AES-CBC", 31),
        ("SM4-CBC", 24),
        ("SM4-CBC", 32),
        ("SM4-CBC", 8),
    ],
)
def test_bad_key_length(mode, klen):
    with pytest.raises(ValueError, match=rf"{mode}.*got {klen} bytes") as ei:
        check_cipher_args(b"k" * klen, mode)
    assert ("16 bytes" if mode == "SM4-CBC" else "16, 24 or 32") in str(ei.value)
    with pytest.raises(ValueError):
        EncryptSink(io.BytesIO(), b"k" * klen, mode)


@pytest.mark.parametrize("mode", ["aes-gcm", "AES-ECB", "SM4-GCM", "AES-GCM ", "", None])
def test_bad_mode(mode):
    with pytest.raises(ValueError, match="'AES-GCM', 'AES-CBC', 'SM4-CBC'"):
        check_cipher_args(b"k" * 16, mode)


def test_arg_names_in_messages():
    with pytest.raises(ValueError, match="dec_key for dec_mode='AES-GCM'"):
        check_cipher_args(b"k", "AES-GCM", key_arg="dec_key", mode_arg="dec_mode")
    with pytest.raises(TypeError):
        check_cipher_args("0123456789abcdef", "AES-GCM")


@pytest.mark.parametrize(("mode", "klen"), MODE_KEYS)
def test_good_args(mode, klen):
    check_cipher_args(KEYS[klen], mode)


def test_sniff():
    assert sniff_cipher(b"\xd8\x5e\x3a\x7f rest") == "AES-GCM"
    assert sniff_cipher(b"\xd9\x5e\x3a\x7f") == "AES-CBC"
    assert sniff_cipher(b"\xda\x5e\x3a\x7f") == "SM4-CBC"
    for head in (b"", b"\xd8\x5e\x3a", b"\x0a\x05", b"crc_num"):
        assert sniff_cipher(head) is None


# ------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize(("mode", "klen"), MODE_KEYS)
@pytest.mark.parametrize(
    "n", [0, 1, 15, 16, 17, SMALL - 1, SMALL, SMALL + 1, 3 * SMALL, 5 * SMALL + 7]
)
def test_round_trip(mode, klen, n):
    data = os.urandom(n)
    raw = encrypt(data, KEYS[klen], mode, chunk=1000)
    if n == 0:
        assert raw == b""
    else:
        assert sniff_cipher(raw) == mode
        blocks = blocks_of(raw, mode)
        assert len(blocks) == -(-n // SMALL)
        hdr = _blocks.header_size(mode)
        if mode == "AES-GCM":
            assert len(raw) == n + hdr * len(blocks)
        else:
            assert len(raw) == sum(((len(d) // 16) + 1) * 16 + hdr for d in _chunks(data, SMALL))
    src = DecryptSource(io.BytesIO(raw), KEYS[klen], mode)
    assert src.size_hint >= n
    if mode == "AES-GCM":
        assert src.size_hint == n
    assert src.read() == data
    assert src.read(10) == b""
    src.close()


def _chunks(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("mode", MODES)
def test_write_granularity_and_readinto(mode):
    data = os.urandom(7 * SMALL + 123)
    key = KEYS[16]
    ref = decrypt(encrypt(data, key, mode), key, mode)
    assert ref == data
    for chunk in (1, 10, SMALL, 3 * SMALL + 5):
        raw = encrypt(data, key, mode, chunk=chunk)
        for bufsize in (1, 7, SMALL, 10 * SMALL):
            assert decrypt(raw, key, mode, bufsize=bufsize) == data


def test_numpy_buffers_in_and_out():
    key = KEYS[32]
    arr = np.arange(50_000, dtype=np.float32).reshape(100, 500)
    out = io.BytesIO()
    sink = EncryptSink(out, key, block_size=SMALL)
    sink.write(memoryview(arr))
    sink.write(arr[::2].copy())  # ndarray directly
    sink.close()
    src = DecryptSource(io.BytesIO(out.getvalue()), key)
    back = np.empty_like(arr)
    assert src.readinto(memoryview(back)) == arr.nbytes
    np.testing.assert_array_equal(back, arr)
    half = np.empty((50, 500), np.float32)
    assert src.readinto(half) == half.nbytes
    np.testing.assert_array_equal(half, arr[::2])
    assert src.readinto(half) == 0


@pytest.mark.parametrize("block", [BLOCK_SIZE, None], ids=["mindspore-64MiB", "default-4MiB"])
def test_real_block_size_multi_block_file(tmp_path, block):
    """Two real blocks plus a tail, through a real file (fileno/preadv path): MindSpore's
    64 MiB blocks, and the 4 MiB blocks mindckpt writes by default."""
    key = KEYS[32]
    size = block or WRITE_BLOCK_SIZE
    assert WRITE_BLOCK_SIZE == 4 << 20
    data = np.random.default_rng(0).integers(0, 255, 2 * size + 1000, dtype=np.uint8)
    p = tmp_path / "big.ckpt"
    with open(p, "wb") as f:
        sink = EncryptSink(f, key, workers=2, **({"block_size": block} if block else {}))
        sink.write(data[:100])
        sink.write(data[100:])
        sink.close()
    assert p.stat().st_size == data.nbytes + 3 * 48
    with open(p, "rb") as f:
        src = DecryptSource(f, key, path=str(p))
        assert [b.size for b in src._blocks] == [size, size, 1000]
        out = np.empty_like(data)
        assert src.readinto(out) == data.nbytes
        src.close()
    assert np.array_equal(out, data)


def test_exact_multiple_marks_last_block():
    key = KEYS[16]
    raw = encrypt(os.urandom(2 * SMALL), key)
    blocks = blocks_of(raw)
    flags = [int.from_bytes(b[28 + 9 : 28 + 12], "big") for b in blocks]
    assert flags == [0 << 1, (1 << 1) | 1]


def test_our_gcm_iv_layout():
    raw = encrypt(b"x" * 10, KEYS[16])
    iv = raw[28:44]
    assert iv[:3] == _blocks.NONCE_MARKER and iv[12:] == _blocks.IV_TAIL
    assert int.from_bytes(iv[9:12], "big") == 1  # block 0, last
    other = encrypt(b"x" * 10, KEYS[16])
    assert other[28 + 3 : 28 + 9] != iv[3:9]  # fresh file id per file


def test_cbc_warns_once_per_save_gcm_not():
    for mode in ("AES-CBC", "SM4-CBC"):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            sink = EncryptSink(io.BytesIO(), KEYS[16], mode, block_size=SMALL)
            for _ in range(5):
                sink.write(b"a" * SMALL)
            sink.close()
        msgs = [x for x in w if issubclass(x.category, UserWarning)]
        assert len(msgs) == 1 and "integrity" in str(msgs[0].message)
        assert "AES-GCM" in str(msgs[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EncryptSink(io.BytesIO(), KEYS[16], "AES-GCM").close()


def test_ms_style_random_nonce_files_decrypt():
    for mode, klen in MODE_KEYS:
        data = os.urandom(3 * SMALL + 5)
        raw = ms_style_encrypt(data, KEYS[klen], mode, SMALL)
        assert decrypt(raw, KEYS[klen], mode) == data


def test_ms_style_reorder_is_not_detected():
    """Documented limitation: block order is only checked on files mindckpt wrote."""
    data = os.urandom(3 * SMALL)
    raw = ms_style_encrypt(data, KEYS[16], "AES-GCM", SMALL)
    b = blocks_of(raw)
    swapped = b[1] + b[0] + b[2]
    assert decrypt(swapped, KEYS[16]) == data[SMALL : 2 * SMALL] + data[:SMALL] + data[2 * SMALL :]


def test_legacy_16_byte_gcm_iv():
    """Pre-2.10 MindSpore derived the GCM counter from all 16 IV bytes (format-spec §7.3)."""
    key, data, iv = KEYS[16], os.urandom(100), os.urandom(16)
    enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    ct = enc.update(data) + enc.finalize()
    raw = (
        struct.pack("<4s16sii16si", _blocks.MAGICS["AES-GCM"], enc.tag, 24 + 100, 16, iv, 100) + ct
    )
    assert decrypt(raw, key) == data


# ------------------------------------------------------------------------------------------
# failures


def test_sink_error_propagates_and_abort_is_quiet():
    class Broken:
        def write(self, b):
            raise OSError(28, "No space left on device")

    sink = EncryptSink(Broken(), KEYS[16], block_size=SMALL)
    with pytest.raises(OSError, match="No space"):
        for _ in range(50):
            sink.write(b"z" * SMALL)
        sink.close()
    sink.abort()
    sink2 = EncryptSink(io.BytesIO(), KEYS[16], block_size=SMALL)
    sink2.write(b"q" * 10 * SMALL)
    sink2.abort()
    sink2.abort()


def test_short_writes_are_completed():
    class Trickle(io.RawIOBase):
        def __init__(self):
            self.data = bytearray()

        def writable(self):
            return True

        def write(self, b):
            k = min(len(b), 100)
            self.data += bytes(b[:k])
            return k

    t = Trickle()
    data = os.urandom(3 * SMALL)
    sink = EncryptSink(t, KEYS[16], block_size=SMALL)
    sink.write(data)
    sink.close()
    assert decrypt(bytes(t.data), KEYS[16]) == data


@pytest.mark.parametrize("mode", MODES)
def test_wrong_key(mode):
    data = os.urandom(2 * SMALL)
    raw = encrypt(data, KEYS[16], mode)
    bad = bytes(16)
    if mode == "AES-GCM":
        with pytest.raises(DecryptionError, match=r"t\.ckpt.*block 0.*dec_key is wrong"):
            decrypt(raw, bad, mode)
    else:
        # CBC has no integrity: the padding check catches a wrong key with p ~ 255/256.
        fails = 0
        for k in range(20):
            try:
                decrypt(raw, bytes([k]) * 16, mode)
            except DecryptionError as exc:
                assert "t.ckpt" in str(exc) and "padding" in str(exc)
                fails += 1
        assert fails >= 17


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("other", MODES)
def test_wrong_mode(mode, other):
    if mode == other:
        return
    raw = encrypt(b"hello" * 100, KEYS[16], mode)
    with pytest.raises(DecryptionError, match=rf"{mode}-encrypted.*Pass dec_mode='{mode}'"):
        decrypt(raw, KEYS[16], other)


@pytest.mark.parametrize("head", [b"\x0a\x05\x0a\x01w\x12\x00", b"PK\x03\x04rest", b"garbage!"])
def test_key_for_unencrypted_file(head):
    with pytest.raises(DecryptionError, match="not encrypted.*without dec_key"):
        decrypt(head, KEYS[16])


def test_empty_file_is_empty_plaintext():
    src = DecryptSource(io.BytesIO(b""), KEYS[16])
    assert src.size_hint == 0 and src.read() == b""


def test_bad_key_in_decrypt_source():
    with pytest.raises(DecryptionError, match="dec_key.*got 5 bytes"):
        DecryptSource(io.BytesIO(b""), b"12345", path="p.ckpt")


def _flip(raw: bytes, i: int, bit: int = 0x01) -> bytes:
    b = bytearray(raw)
    b[i] ^= bit
    return bytes(b)


def _tamper_cases():
    key = KEYS[16]
    data = os.urandom(3 * SMALL - 100)
    raw = encrypt(data, key)
    b = blocks_of(raw)
    o1 = len(b[0])  # offset of block 1
    other = blocks_of(encrypt(os.urandom(3 * SMALL - 100), key))
    cases = {}
    for name, off in [
        ("magic", 0),
        ("tag", 4),
        ("tag_end", 19),
        ("L", 20),
        ("L_high", 23),
        ("ivlen", 24),
        ("iv_nonce0", 28),
        ("iv_fileid", 32),
        ("iv_counter", 39),
        ("iv_unused", 42),
        ("C", 44),
        ("C_high", 47),
        ("ct_first", 48),
        ("ct_last", len(b[0]) - 1),
    ]:
        cases[f"blk0_{name}"] = _flip(raw, off)
        cases[f"blk1_{name}"] = _flip(raw, o1 + off)
    cases["last_ct_byte"] = _flip(raw, len(raw) - 1, 0x80)
    cases["swap01"] = b[1] + b[0] + b[2]
    cases["swap12"] = b[0] + b[2] + b[1]
    cases["drop_first"] = b[1] + b[2]
    cases["drop_middle"] = b[0] + b[2]
    cases["drop_last"] = b[0] + b[1]
    cases["duplicate"] = b[0] + b[1] + b[1] + b[2]
    cases["repeat_file"] = raw + raw
    cases["splice_other_file"] = b[0] + other[1] + b[2]
    cases["other_file_tail"] = b[0] + b[1] + other[2]
    cases["append_junk"] = raw + b"\x00"
    cases["append_magic"] = raw + _blocks.MAGICS["AES-GCM"]
    cases["append_crc_trailer"] = raw + b"crc_num" + bytes(10)
    cases["truncate_mid_block"] = raw[:-1]
    cases["truncate_mid_header"] = raw[: o1 + 30]
    cases["huge_L"] = raw[:20] + struct.pack("<i", BLOCK_SIZE + 51) + raw[24:]
    cases["negative_L"] = raw[:20] + struct.pack("<i", -1) + raw[24:]
    cases["iv_len_12"] = raw[:24] + struct.pack("<i", 12) + raw[28:]
    cases["L_beyond_eof"] = (
        raw[: o1 + 20]
        + struct.pack("<i", 10**6)
        + raw[o1 + 24 : o1 + 44]
        + struct.pack("<i", 10**6 - 24)
        + raw[o1 + 48 :]
    )
    return key, data, cases


_KEY, _DATA, _CASES = _tamper_cases()


@pytest.mark.parametrize("name", sorted(_CASES))
def test_gcm_tamper_table(name):
    with pytest.raises(DecryptionError) as ei:
        decrypt(_CASES[name], _KEY, path="/ckpt/tampered.ckpt")
    msg = str(ei.value)
    assert "/ckpt/tampered.ckpt" in msg
    assert "AES-GCM" in msg
    if name not in ("blk0_magic",):
        assert "block" in msg


def test_tamper_messages_are_specific():
    def msg(name):
        with pytest.raises(DecryptionError) as ei:
            decrypt(_CASES[name], _KEY)
        return str(ei.value)

    assert "spliced" in msg("splice_other_file")
    assert "dropped" in msg("drop_middle")
    assert "duplicated" in msg("duplicate")
    assert "truncated at a block boundary" in msg("drop_last")
    assert "crc_num" in msg("append_crc_trailer")
    assert "unexpected bytes" in msg("append_junk")
    assert "truncated" in msg("truncate_mid_block")
    assert "block 1 at byte offset" in msg("blk1_ct_first")
    assert "modified" in msg("blk1_ct_first")
    assert "IV length" in msg("iv_len_12")
    assert "outside 24.." in msg("huge_L")


def test_cbc_header_checks_and_padding():
    key = KEYS[16]
    raw = encrypt(os.urandom(2 * SMALL), key, "AES-CBC")
    with pytest.raises(DecryptionError, match="multiple of 16"):
        decrypt(
            raw[:4] + struct.pack("<i", 24 + 17) + raw[8:28] + struct.pack("<i", 17) + raw[32:],
            key,
            "AES-CBC",
        )
    with pytest.raises(DecryptionError, match="unexpected bytes"):
        decrypt(raw + b"junk", key, "AES-CBC")
    # Corrupt the last ciphertext block of block 0 -> padding is garbage (p ~ 255/256).
    with pytest.raises(DecryptionError, match="padding"):
        decrypt(_flip(raw, 32 + SMALL + 15, 0xFF), key, "AES-CBC")


# ------------------------------------------------------------------------------------------
# golden files written by MindSpore 2.10


def _manifest():
    p = GOLDEN / "manifest.json"
    if not p.exists():
        pytest.skip("golden files not generated")
    return json.loads(p.read_text())["files"]


@pytest.mark.parametrize(
    "name",
    [f"enc_{m}_k{k}.ckpt" for m in ("aes_gcm", "aes_cbc") for k in (16, 24, 32)]
    + ["enc_sm4_cbc_k16.ckpt"],
)
def test_golden_decrypts(name):
    files = _manifest()
    if name not in files:
        pytest.skip(f"{name} not in golden set")
    enc = files[name]["encryption"]
    key = bytes.fromhex(enc["key_hex"])
    plain = (GOLDEN / enc["plaintext_of"]).read_bytes()
    path = GOLDEN / name
    with open(path, "rb") as f:
        src = DecryptSource(f, key, enc["mode"], path=str(path))
        assert src.read() == plain
        src.close()
    assert sniff_cipher(path.read_bytes()) == enc["mode"]


def test_golden_enc_crc_trailer_explained():
    files = _manifest()
    name = "enc_crc_aes_gcm_k16.ckpt"
    if name not in files:
        pytest.skip("not in golden set")
    key = bytes.fromhex(files[name]["encryption"]["key_hex"])
    raw = (GOLDEN / name).read_bytes()
    with pytest.raises(DecryptionError, match="crc_num.*last 17 bytes"):
        decrypt(raw, key)
    assert (
        decrypt(raw[:-17], key) == (GOLDEN / files[name]["encryption"]["plaintext_of"]).read_bytes()
    )


# ------------------------------------------------------------------------------------------
# MindSpore 2.10 reads ours, we read MindSpore's (one MindSpore process for all cases)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _record(name: str, values: np.ndarray) -> bytes:
    data = values.astype("<f4").tobytes()
    t = b"\x08" + _varint(values.size) + b"\x12\x07Float32\x1a" + _varint(len(data)) + data
    v = b"\x0a" + _varint(len(name)) + name.encode() + b"\x12" + _varint(len(t)) + t
    return b"\x0a" + _varint(len(v)) + v


_MS_SCRIPT = textwrap.dedent(
    """
    import json, sys, numpy as np, mindspore as ms
    jobs = json.loads(sys.argv[1])
    res = {}
    for j in jobs["load"]:
        try:
            d = ms.load_checkpoint(j["path"], dec_key=bytes.fromhex(j["key"]), dec_mode=j["mode"])
            res[j["path"]] = {k: [int(v.asnumpy().size), float(v.asnumpy().astype(np.float64).sum())]
                               for k, v in d.items()}
        except Exception as e:
            res[j["path"]] = "ERROR " + repr(e)[:300]
    for j in jobs["save"]:
        a = np.arange(j["n"], dtype=np.float32) % 1000
        ms.save_checkpoint([{"name": "big", "data": ms.Tensor(a)}], j["path"],
                           enc_key=bytes.fromhex(j["key"]), enc_mode=j["mode"])
    print("RESULT" + json.dumps(res))
    """
)


@pytest.mark.mindspore
def test_mindspore_interop(tmp_path):
    import ms_oracle

    ms_oracle.require_mindspore()  # skips, or fails where MINDCKPT_REQUIRE_MINDSPORE=1 (CI)
    rng = np.random.default_rng(1)
    cases = []  # (path, key, mode, {name: array})
    for mode, klen in MODE_KEYS:
        w = rng.standard_normal(2).astype(np.float32)
        v = rng.standard_normal(1000).astype(np.float32)
        cases.append(
            (tmp_path / f"ours_{mode}_{klen}.ckpt", KEYS[klen], mode, {"w": w, "v": v}, BLOCK_SIZE)
        )
    big = np.arange((BLOCK_SIZE + (8 << 20)) // 4, dtype=np.float32) % 777  # 72 MiB -> 2 blocks
    cases.append(
        (
            tmp_path / "ours_big_gcm.ckpt",
            KEYS[32],
            "AES-GCM",
            {"w": big[:2], "big": big},
            BLOCK_SIZE,
        )
    )
    cases.append((tmp_path / "ours_big_cbc.ckpt", KEYS[16], "AES-CBC", {"big": big}, BLOCK_SIZE))
    # what save_checkpoint writes: WRITE_BLOCK_SIZE (4 MiB) blocks, here 3 of them and a tail
    mid = big[: (3 * WRITE_BLOCK_SIZE + 1000) // 4]
    for mode, klen in (("AES-GCM", 32), ("AES-CBC", 16), ("SM4-CBC", 16)):
        cases.append((tmp_path / f"ours_default_{mode}.ckpt", KEYS[klen], mode,
                      {"w": big[:2], "mid": mid}, WRITE_BLOCK_SIZE))
    for path, key, mode, tensors, bs in cases:
        with open(path, "wb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            sink = EncryptSink(f, key, mode, block_size=bs)
            for name, arr in tensors.items():
                sink.write(_record(name, arr))
            sink.close()
    saves = [
        {
            "path": str(tmp_path / "ms_big_gcm.ckpt"),
            "key": KEYS[16].hex(),
            "mode": "AES-GCM",
            "n": big.size,
        },
        {
            "path": str(tmp_path / "ms_big_sm4.ckpt"),
            "key": KEYS[16].hex(),
            "mode": "SM4-CBC",
            "n": (BLOCK_SIZE // 4) + 100,
        },
        {
            "path": str(tmp_path / "ms_small_cbc.ckpt"),
            "key": KEYS[24].hex(),
            "mode": "AES-CBC",
            "n": 10,
        },
    ]
    jobs = {
        "load": [{"path": str(p), "key": k.hex(), "mode": m} for p, k, m, _, _ in cases],
        "save": saves,
    }
    proc = subprocess.run(
        [ms_oracle.ms_python(), "-c", _MS_SCRIPT, json.dumps(jobs)], capture_output=True, text=True, timeout=300
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    assert line, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads(line[0][6:])
    for path, _, _, tensors, _ in cases:
        got = res[str(path)]
        assert isinstance(got, dict), (path, got)
        assert set(got) == set(tensors)
        for name, arr in tensors.items():
            assert got[name][0] == arr.size
            assert got[name][1] == pytest.approx(float(arr.astype(np.float64).sum()), rel=1e-6)
    # MindSpore -> us: its random-nonce multi-block files decrypt, byte layout as spec'd.
    for s in saves:
        with open(s["path"], "rb") as f:
            src = DecryptSource(f, bytes.fromhex(s["key"]), s["mode"], path=s["path"])
            assert not src._ours
            plain = src.read()
            src.close()
        arr = np.arange(s["n"], dtype=np.float32) % 1000
        assert plain.endswith(arr.tobytes()) or arr.tobytes() in plain
        if s["n"] * 4 > BLOCK_SIZE:
            pad = 0 if s["mode"] == "AES-GCM" else 16
            assert len(src._blocks) == 2 and src._blocks[0].size == BLOCK_SIZE + pad


@pytest.mark.parametrize("mode", MODES)
def test_caller_buffer_reusable_after_write(mode):
    """Large writes are ciphered straight from the caller's buffer; write() returns after that."""
    key = KEYS[16]
    data = bytearray(os.urandom(5 * SMALL + 3))
    ref = bytes(data)
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sink = EncryptSink(out, key, mode, block_size=SMALL)
    sink.write(b"h" * 33)
    sink.write(data)
    data[:] = bytes(len(data))
    sink.close()
    assert decrypt(out.getvalue(), key, mode) == b"h" * 33 + ref


@settings(max_examples=40, deadline=None)
@given(
    data=st.binary(max_size=3 * 64 + 40),
    block=st.integers(1, 100),
    cuts=st.lists(st.integers(0, 300), max_size=6),
    mode=st.sampled_from(MODES),
)
def test_round_trip_property(data, block, cuts, mode):
    key = KEYS[16]
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sink = EncryptSink(out, key, mode, block_size=block, workers=2)
    edges = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    for a, b in zip(edges, edges[1:], strict=False):
        sink.write(data[a:b])
    sink.close()
    raw = out.getvalue()
    assert len(blocks_of(raw, mode)) == -(-len(data) // block)
    assert decrypt(raw, key, mode, bufsize=7) == data


def test_check_cipher_args_api_prefix():
    with pytest.raises(ValueError, match=r"^For 'CheckpointConfig', enc_key for enc_mode='SM4-CBC' "
                                         r"must be 16 bytes long, got 24 bytes$"):
        check_cipher_args(b"k" * 24, "SM4-CBC", api="CheckpointConfig")
    with pytest.raises(ValueError, match=r"^For 'save_checkpoint', enc_mode='x' is not supported"):
        check_cipher_args(b"k" * 16, "x", api="save_checkpoint")
    with pytest.raises(TypeError, match=r"^For 'load_checkpoint', dec_key must be bytes, got str"):
        check_cipher_args("k", "AES-GCM", key_arg="dec_key", api="load_checkpoint")


@pytest.mark.parametrize("mode", MODES)
def test_reads_ending_inside_blocks(mode, monkeypatch):
    """Requests of every alignment against the blocks: a GCM block that starts inside a
    request and ends past it is split (head deciphered into the caller's buffer, the rest
    buffered); the bytes are the same for every mode and request pattern, and a tampered
    split block still fails its tag."""
    key = KEYS[16]
    data = os.urandom(9 * SMALL + 77)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        raw = encrypt(data, key, mode, block_size=SMALL)
    splits = []
    real = crypto._BlockFile.decrypt

    def counting(self, i, out, form, stop=None, rest=None):
        splits.append(rest is not None)
        return real(self, i, out, form, stop, rest)

    monkeypatch.setattr(crypto._BlockFile, "decrypt", counting)
    rng = np.random.default_rng(3)
    for _ in range(20):
        src = DecryptSource(io.BytesIO(raw), key, mode)
        got = bytearray()
        while True:
            n = int(rng.choice([1, 100, SMALL - 3, SMALL + 5, 3 * SMALL + 11]))
            buf = bytearray(n)
            k = src.readinto(buf)
            if not k:
                break
            got += buf[:k]
        src.close()
        assert bytes(got) == data
    assert any(splits) == (mode == "AES-GCM")  # only GCM blocks are split
    if mode == "AES-GCM":
        bad = bytearray(raw)
        bad[2 * (SMALL + 48) + 48 + SMALL // 2] ^= 1  # inside block 2's ciphertext
        src = DecryptSource(io.BytesIO(bytes(bad)), key, mode)
        src.readinto(bytearray(SMALL + SMALL // 3))  # block 1 split across this request
        with pytest.raises(DecryptionError, match="block 2"):
            src.readinto(bytearray(3 * SMALL))  # block 2 is split: its tag fails
        src.close()
