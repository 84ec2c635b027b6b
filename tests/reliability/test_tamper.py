"""Tamper tables: every header byte flipped, payload bytes flipped across the file, truncation
at every length, for each file kind.

Every load of a damaged file must either raise one of mindckpt's documented errors
(:mod:`mindckpt.errors`; never SystemError, MemoryError, IndexError, RecursionError, a hang)
or return what was saved.  Where integrity is on (CRC, AES-GCM, safetensors with crc_check),
it must never return anything else: every change is detected.  Without integrity (plain,
AES-CBC, safetensors) a changed payload byte can load as a changed value; those are counted.
``MINDCKPT_TAMPER_STRIDE=1`` flips every payload byte.
"""

from __future__ import annotations

import os
import warnings

import pytest

import mindckpt as ms
from mindckpt.errors import CheckpointError
from mindckpt.pipeline import open_file
from mindckpt.storage.local import LOCAL

from kinds import KINDS, bounded, params, suffix

STRIDE = int(os.environ.get("MINDCKPT_TAMPER_STRIDE", "0"))  # 0: about 64 payload bytes per file
FIGURES: dict[str, dict[str, int]] = {}


def snapshot(loaded: dict) -> dict:
    return {k: (v.asnumpy().dtype.str, v.asnumpy().shape, v.asnumpy().tobytes()) if
            hasattr(v, "asnumpy") else v for k, v in loaded.items()}


def payload_positions(path: str, kind: str, size: int) -> set[int]:
    if kind in ("gcm", "cbc"):
        return set()  # everything is ciphertext: all bytes are flipped
    with open_file(LOCAL, path) as r:
        return {sp.offset + i for e in r.index for sp in e.spans for i in range(sp.length)}


def cuts(path: str, kind: str, size: int) -> list[int]:
    """Truncation lengths: every length in the first 96 and last 48 bytes, every 5th between,
    and both sides of every payload boundary."""
    out = set(range(min(96, size))) | set(range(max(0, size - 48), size)) | set(range(0, size, 5))
    if kind not in ("gcm", "cbc"):
        with open_file(LOCAL, path) as r:
            for e in r.index:
                for sp in e.spans:
                    for p in (sp.offset, sp.offset + sp.length):
                        out |= {p - 1, p, p + 1}
    return sorted(n for n in out if 0 <= n < size)


def outcome(path: str, load_kw: dict, original: dict) -> str:
    try:
        with warnings.catch_warnings(), bounded():
            warnings.simplefilter("ignore")
            got = ms.load_checkpoint(path, **load_kw)
    except CheckpointError:
        return "detected"
    except ValueError as exc:  # MindSpore's documented ValueErrors (e.g. an empty dict)
        if "empty" in str(exc):
            return "detected"
        raise AssertionError(f"undocumented ValueError {type(exc).__name__}: {exc}") from exc
    return "same" if snapshot(got) == original else "changed"


@pytest.mark.parametrize("kind", list(KINDS))
def test_tamper_table(tmp_path, kind):
    save_kw, load_kw, integrity = KINDS[kind]
    good = str(tmp_path / ("good" + suffix(kind)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ms.save_checkpoint(params(1, 2, 64), good, **save_kw)
    blob = open(good, "rb").read()
    original = snapshot(ms.load_checkpoint(good, **load_kw))
    payload = payload_positions(good, kind, len(blob))
    header = [i for i in range(len(blob)) if i not in payload]
    stride = STRIDE or max(1, len(payload) // 64)
    spread = sorted(payload)[::stride]
    bad = str(tmp_path / ("bad" + suffix(kind)))
    fig = FIGURES.setdefault(kind, {"cases": 0, "detected": 0, "same": 0, "changed": 0})
    cases = [("flip", i) for i in header + spread] + [("cut", n) for n in cuts(good, kind, len(blob))]
    for what, i in cases:
        if what == "flip":
            b = bytearray(blob)
            b[i] ^= 1 << (i % 8)
            data = bytes(b)
        else:
            data = blob[:i]
        with open(bad, "wb") as f:
            f.write(data)
        try:
            got = outcome(bad, load_kw, original)
        except (CheckpointError, AssertionError):
            raise
        except BaseException as exc:
            raise AssertionError(f"{kind}: {what} at {i}: {type(exc).__name__}: {exc}") from exc
        fig["cases"] += 1
        fig[got] += 1
        if integrity:
            assert got != "changed", f"{kind}: {what} at byte {i} loads changed data unnoticed"
        if what == "cut" and kind != "plain":
            # a cut file is never whole again (a plain .ckpt cut at a record boundary is a
            # valid smaller checkpoint: mindckpt cannot tell, nor can MindSpore)
            assert got == "detected" or i == len(blob), f"{kind}: cut at {i}: {got}"
        if what == "cut" and kind == "plain":
            assert got != "same" or i == len(blob)
    print(f"\ntamper {kind}: {fig}")


GOLDEN_GCM = os.path.join(os.path.dirname(__file__), "..", "golden", "files",
                          "enc_aes_gcm_k16.ckpt")  # MindSpore-written, key bytes(range(16))


def gcm_blocks(blob: bytes) -> list[bytes]:
    """Split an AES-GCM file into its blocks (magic, tag, length-prefixed rest)."""
    out, p = [], 0
    while p < len(blob):
        n = int.from_bytes(blob[p + 20:p + 24], "little")
        out.append(blob[p:p + 24 + n])
        p += 24 + n
    assert b"".join(out) == blob
    return out


def test_gcm_block_swap_drop_duplicate_splice_and_downgrade(tmp_path):
    from kinds import KEY

    import io

    import numpy as np

    from mindckpt.codecs import crypto
    from mindckpt.formats.ckpt import write_ckpt
    from mindckpt.formats.records import Record

    _, load_kw, _ = KINDS["gcm"]

    def encrypted(gen: int) -> bytes:  # small blocks, so that the file has several
        out = io.BytesIO()
        sink = crypto.EncryptSink(out, KEY, "AES-GCM", block_size=4096)
        write_ckpt(sink, [Record(f"w{i}", np.full(700, gen + i, np.float32)) for i in range(8)])
        sink.close()
        return out.getvalue()

    A, B = gcm_blocks(encrypted(0)), gcm_blocks(encrypted(100))
    assert len(A) >= 4 and len(A) == len(B)
    good = str(tmp_path / "good.ckpt")
    with open(good, "wb") as f:
        f.write(b"".join(A))
    assert len(ms.load_checkpoint(good, **load_kw)) == 8
    golden0 = gcm_blocks(open(GOLDEN_GCM, "rb").read())[0]
    cases = {
        "swap 0,1": [A[1], A[0], *A[2:]],
        "swap 1,2": [A[0], A[2], A[1], *A[3:]],
        "drop 1": [A[0], *A[2:]],
        "drop last": A[:-1],
        "duplicate 1": [A[0], A[1], *A[1:]],
        "splice 1 from b": [A[0], B[1], *A[2:]],
        "splice tail from b": [*A[:2], *B[2:]],
        "block 0 from MindSpore": [golden0, *A[1:]],
        "append MindSpore block": [*A, golden0],
    }
    bad = str(tmp_path / "bad.ckpt")
    for what, blocks in cases.items():
        with open(bad, "wb") as f:
            f.write(b"".join(blocks))
        assert outcome(bad, load_kw, {}) == "detected", what
    assert KEY == bytes(range(16))
    print(f"\ntamper gcm blocks: {len(cases)} cases, {len(cases)} detected")
