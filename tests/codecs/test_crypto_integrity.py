"""Integrity of encrypted .ckpt files: IV forms, block binding, strict mode, tamper tables.

Every tampered file must raise DecryptionError naming the file (and the block where one is
at fault) from both readers, the sequential DecryptSource and the positional
DecryptByteSource; the cases CBC cannot detect (it has no integrity) are listed apart and
checked to raise nothing but DecryptionError.
"""

from __future__ import annotations

import io
import os
import warnings

import pytest

from mindckpt.codecs import _blocks
from mindckpt.codecs._source import as_positional
from mindckpt.codecs.crypto import DecryptByteSource, DecryptSource, EncryptSink
from mindckpt.errors import DecryptionError
from cipher_files import ms_encrypt

SMALL = 1024
KEY = bytes(range(16))
PATH = "/ckpt/tampered.ckpt"


def encrypt(data: bytes, mode: str = "AES-GCM", key: bytes = KEY, block: int = SMALL) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sink = EncryptSink(out, key, mode, block_size=block, workers=2)
    sink.write(data)
    sink.close()
    return out.getvalue()


def blocks_of(raw: bytes, mode: str = "AES-GCM") -> list[bytes]:
    t = _blocks.scan_blocks(as_positional(io.BytesIO(raw)), mode, "x")
    return [raw[b.offset : b.data_offset + b.size] for b in t]


def read_stream(raw: bytes, mode: str = "AES-GCM", workers: int = 2, **kw) -> bytes:
    with DecryptSource(io.BytesIO(raw), KEY, mode, path=PATH, workers=workers, **kw) as src:
        return src.read()


def read_random(raw: bytes, mode: str = "AES-GCM", **kw) -> bytes:
    """Whole-range read (direct, parallel) and small pieces (the cache path) must agree."""
    with DecryptByteSource(io.BytesIO(raw), KEY, mode, path=PATH, workers=2, **kw) as src:
        whole = bytearray(src.size)
        assert src.readinto(whole, 0) == src.size
    with DecryptByteSource(io.BytesIO(raw), KEY, mode, path=PATH, workers=2, **kw) as src:
        pieces = b"".join(src.pread(300, o) for o in range(0, src.size, 300))
    assert pieces == whole
    return bytes(whole)


READERS = {"stream": read_stream, "random": read_random}


# ------------------------------------------------------------------------------------------
# pre-2.10 GCM files (16-byte IVs): the IV form is settled before any block is trusted


def test_legacy_iv_multi_block_four_workers_many_runs():
    """Regression: workers shared the legacy-IV flag, so a block failed in some runs.

    128 KiB blocks: long enough for the workers to overlap (the old code failed 47 of 60 runs
    with them, 1 of 60 with 1 KiB blocks); 60 runs take under a second.
    """
    block = 128 << 10
    data = os.urandom(9 * block + 17)
    raw = ms_encrypt(data, block=block, legacy=True)
    assert len(blocks_of(raw)) == 10
    for _ in range(60):
        assert read_stream(raw, workers=4) == data
    for bufsize in (7, block, 3 * block + 1, len(data)):  # direct path and pooled path
        with DecryptSource(io.BytesIO(raw), KEY, path=PATH, workers=4) as src:
            out = bytearray()
            buf = bytearray(bufsize)
            while k := src.readinto(buf):
                out += buf[:k]
        assert out == data
    assert read_random(raw) == data


def test_modern_ms_file_four_workers():
    data = os.urandom(9 * SMALL + 17)
    raw = ms_encrypt(data)
    for _ in range(10):
        assert read_stream(raw, workers=4) == data
    assert read_random(raw) == data


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("forms", [[True, False, True], [False, True, False], [False, False, True]])
def test_mixed_iv_forms_rejected(reader, forms):
    """Every block must use the form block 0 settled (a file mixes forms only when spliced)."""
    raw = ms_encrypt(os.urandom(3 * SMALL), legacy=forms)
    with pytest.raises(DecryptionError, match=r"tampered\.ckpt.*block \d.*authentication failed"):
        READERS[reader](raw)


def test_legacy_form_never_tried_on_bound_files():
    """A bound block whose nonce fails is not retried with the 16-byte form."""
    raw = bytearray(encrypt(os.urandom(2 * SMALL)))
    raw[60] ^= 1
    with pytest.raises(DecryptionError, match="block 0"):
        read_stream(bytes(raw))


# ------------------------------------------------------------------------------------------
# binding: a file's blocks must agree on mindckpt's marker; strict mode requires it

DATA = os.urandom(4 * SMALL - 100)
OURS = encrypt(DATA)
OTHER = encrypt(os.urandom(4 * SMALL - 100))  # ours, same key, another file
MS = ms_encrypt(os.urandom(4 * SMALL - 100))  # MindSpore-written, same key
B, OB, M = blocks_of(OURS), blocks_of(OTHER), blocks_of(MS)
assert len(B) == len(OB) == len(M) == 4


@pytest.mark.parametrize("reader", sorted(READERS))
def test_block0_downgrade_rejected(reader):
    """Replacing block 0 by a MindSpore block once switched every order check off."""
    with pytest.raises(DecryptionError, match=r"tampered\.ckpt.*block 0 at byte offset 0.*lacks "
                                              r"mindckpt's block-order marker"):
        READERS[reader](M[0] + B[1] + B[2] + B[3])


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("pos", [0, 1, 2, 3])
def test_marked_block_inside_unmarked_file_rejected(reader, pos):
    parts = list(M)
    parts[pos] = B[pos]
    with pytest.raises(DecryptionError, match=rf"block {pos} at byte offset \d+.*carries "
                                              "mindckpt's block-order marker"):
        READERS[reader](b"".join(parts))


def test_require_bound():
    assert read_stream(OURS, require_bound=True) == DATA
    assert read_random(OURS, require_bound=True) == DATA
    for reader in (read_stream, read_random):
        with pytest.raises(DecryptionError, match=r"tampered\.ckpt.*require_bound=True.*random"):
            reader(MS, require_bound=True)
        for mode in ("AES-CBC", "SM4-CBC"):
            with pytest.raises(DecryptionError, match=rf"require_bound=True.*{mode} has no integrity"):
                reader(encrypt(DATA, mode), mode, require_bound=True)
    assert read_stream(b"", require_bound=True) == b""  # empty plaintext is 0 bytes, as MindSpore
    # default: MindSpore-written files load, without order checks (documented)
    assert DecryptSource(io.BytesIO(MS), KEY).bound is False
    src = DecryptSource(io.BytesIO(OURS), KEY)
    assert src.bound is True and src.file_id == OURS[28 + 3 : 28 + 9]


# ------------------------------------------------------------------------------------------
# tamper table, AES-GCM written by mindckpt: everything is detected


def _flip(raw: bytes, i: int, bit: int = 0x01) -> bytes:
    b = bytearray(raw)
    b[i] ^= bit
    return bytes(b)


def _gcm_cases() -> dict[str, bytes]:
    cases: dict[str, bytes] = {}
    offs = [0]
    for b in B:
        offs.append(offs[-1] + len(b))
    n = len(B)
    for i in range(n):
        cases[f"drop_{i}"] = b"".join(B[:i] + B[i + 1 :])
        cases[f"duplicate_{i}"] = b"".join(B[: i + 1] + B[i:])
        cases[f"splice_ours_{i}"] = b"".join(B[:i] + [OB[i]] + B[i + 1 :])
        cases[f"splice_ms_{i}"] = b"".join(B[:i] + [M[i]] + B[i + 1 :])
        for j in range(i + 1, n):
            p = list(B)
            p[i], p[j] = p[j], p[i]
            cases[f"swap_{i}{j}"] = b"".join(p)
    for k in range(1, n):
        cases[f"truncate_at_boundary_{k}"] = OURS[: offs[k]]
    for i in range(n):
        o = offs[i]
        for d in (1, 20, 47, 48, 49, len(B[i]) - 1):
            cases[f"truncate_blk{i}+{d}"] = OURS[: o + d]
        for d in range(48):  # every header byte (magic, tag, L, IV length, IV, C)
            cases[f"flip_blk{i}_hdr{d}"] = _flip(OURS, o + d)
        for d in range(48, len(B[i]), 97):  # payload bytes, spread
            cases[f"flip_blk{i}_ct{d}"] = _flip(OURS, o + d, 0x80)
    cases["append_ms_block"] = OURS + M[0]
    cases["append_own_block"] = OURS + B[0]
    cases["prepend_ms_block"] = M[3] + OURS
    cases["ours_then_other"] = OURS + OTHER
    cases["append_junk"] = OURS + b"\0"
    return cases


GCM_CASES = _gcm_cases()


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("name", sorted(GCM_CASES))
def test_gcm_tamper_table(reader, name):
    with pytest.raises(DecryptionError) as ei:
        READERS[reader](GCM_CASES[name])
    msg = str(ei.value)
    assert PATH in msg and "AES-GCM" in msg
    if name not in {f"flip_blk0_hdr{d}" for d in range(4)}:  # bad magic at 0: "not encrypted"
        assert "block" in msg


def test_gcm_tamper_table_is_broad():
    assert len(GCM_CASES) > 4 * 48 + 40


# ------------------------------------------------------------------------------------------
# MindSpore-written AES-GCM: each block is authenticated alone; order is not (documented)


@pytest.mark.parametrize("reader", sorted(READERS))
def test_ms_gcm_content_tamper_detected_order_not(reader):
    for i, b in enumerate(M):
        o = sum(len(x) for x in M[:i])
        for d in list(range(4, 40)) + [44, 48, len(b) - 1]:
            with pytest.raises(DecryptionError):
                READERS[reader](_flip(MS, o + d))
    # documented limitation: whole-block edits pass the decryptor
    plain = [read_stream(b) for b in M]
    assert READERS[reader](M[1] + M[0] + M[2] + M[3]) == plain[1] + plain[0] + plain[2] + plain[3]
    assert READERS[reader](M[0] + M[1]) == plain[0] + plain[1]
    # IV bytes 12-15 are unused by GCM (MindSpore ignores them too)
    assert READERS[reader](_flip(MS, 28 + 13)) == b"".join(plain)


# ------------------------------------------------------------------------------------------
# CBC: framing errors are detected; content and order edits only by chance (no integrity)

CBC_PLAIN = os.urandom(4 * SMALL - 100)


def _cbc_cases(mode: str) -> tuple[dict[str, bytes], dict[str, bytes]]:
    raw = encrypt(CBC_PLAIN, mode)
    b = blocks_of(raw, mode)
    offs = [0]
    for x in b:
        offs.append(offs[-1] + len(x))
    detected: dict[str, bytes] = {}
    chance: dict[str, bytes] = {}
    for i, blk in enumerate(b):
        o = offs[i]
        for d in range(12):  # magic, L, IV length
            detected[f"flip_blk{i}_hdr{d}"] = _flip(raw, o + d)
        for d in range(28, 32):  # C (no longer L - 24)
            detected[f"flip_blk{i}_C{d}"] = _flip(raw, o + d)
        for d in (1, 20, 31, 32, len(blk) - 1):
            detected[f"truncate_blk{i}+{d}"] = raw[: o + d]
        # the padding byte's source: flipping it breaks PKCS#7 deterministically
        detected[f"flip_blk{i}_pad_source"] = _flip(raw, o + len(blk) - 17, 0x20)
        for d in range(12, 28):
            chance[f"flip_blk{i}_iv{d}"] = _flip(raw, o + d)
        for d in range(32, len(blk) - 32, 97):
            chance[f"flip_blk{i}_ct{d}"] = _flip(raw, o + d)
    detected["append_junk"] = raw + b"junk"
    detected["mixed_modes"] = raw + blocks_of(encrypt(b"x" * 10), "AES-GCM")[0]
    chance["swap01"] = b[1] + b[0] + b[2] + b[3]
    chance["drop_2"] = b[0] + b[1] + b[3]
    chance["drop_last"] = b[0] + b[1] + b[2]
    chance["duplicate_1"] = b[0] + b[1] + b[1] + b[2] + b[3]
    chance["splice_other"] = b[0] + blocks_of(encrypt(os.urandom(2 * SMALL), mode), mode)[1] + b[2]
    return detected, chance


@pytest.mark.parametrize("mode", ["AES-CBC", "SM4-CBC"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_cbc_tamper_table(mode, reader):
    detected, chance = _cbc_cases(mode)
    for name, raw in sorted(detected.items()):
        with pytest.raises(DecryptionError) as ei:
            READERS[reader](raw, mode)
        assert PATH in str(ei.value), name
    silent = 0
    for _name, raw in sorted(chance.items()):
        try:
            out = READERS[reader](raw, mode)
        except DecryptionError as exc:
            assert PATH in str(exc)
        else:
            silent += 1
            assert out != CBC_PLAIN  # decrypted, silently changed: what "no integrity" means
    assert silent >= len(chance) // 2


# ------------------------------------------------------------------------------------------
# fuzzing: random edits raise DecryptionError (bound GCM: always), never anything else

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ_FILES = {
    "ours-gcm": (OURS, "AES-GCM", DATA),
    "ms-gcm": (MS, "AES-GCM", None),
    "aes-cbc": (encrypt(DATA, "AES-CBC"), "AES-CBC", DATA),
}


@settings(max_examples=80, deadline=None)
@given(
    kind=st.sampled_from(sorted(FUZZ_FILES)),
    edits=st.dictionaries(st.integers(0, len(OURS) + 200), st.integers(1, 255), max_size=4),
    cut=st.one_of(st.none(), st.integers(0, len(OURS) + 200)),
    reader=st.sampled_from(sorted(READERS)),
)
def test_fuzz_decryptors(kind, edits, cut, reader):
    raw0, mode, plain = FUZZ_FILES[kind]
    raw = bytearray(raw0 if cut is None else raw0[:cut])
    for pos, x in edits.items():
        if pos < len(raw):
            raw[pos] ^= x
    changed = bytes(raw) != raw0
    try:
        out = READERS[reader](bytes(raw), mode)
    except DecryptionError as exc:
        assert PATH in str(exc)
        return
    if kind == "ours-gcm":
        assert not changed or raw == b"", "a modified bound GCM file decrypted"
        assert out == (plain if raw else b"")
    if kind == "ms-gcm" and changed and len(raw) == len(raw0):
        # only IV bytes 12-15 (unused by GCM) may change without detection
        diff = {i for i in range(len(raw)) if raw[i] != raw0[i]}
        assert all((i % (48 + 1024)) in range(40, 44) for i in diff)


def test_many_empty_blocks_are_indexed_in_bounded_memory():
    """A crafted GCM file of 50 000 empty blocks: the index costs < 2x the file (was ~7x)."""
    import tracemalloc

    import numpy as np

    n = 50_000
    hdr = np.dtype([("magic", "S4"), ("tag", "S16"), ("L", "<i4"), ("ivlen", "<i4"),
                    ("iv", "V16"), ("C", "<i4")])
    a = np.zeros(n, hdr)
    a["magic"] = _blocks.MAGICS["AES-GCM"]
    a["L"], a["ivlen"], a["C"] = 24, 16, 0
    a["iv"] = np.frombuffer(os.urandom(16 * n), "V16")
    raw = a.tobytes()
    assert len(raw) == 48 * n
    tracemalloc.start()
    try:
        src = DecryptByteSource(io.BytesIO(raw), KEY, path=PATH)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert src.block_count == n and src.size == 0
    assert peak < 2 * len(raw), peak / len(raw)
