"""Fuzzing both parsers and the decryptor (hypothesis, a time-boxed profile for CI).

Inputs are valid files with random damage (flips, insertions, deletions, truncation, splices)
and, for safetensors, random JSON headers.  Every load must return or raise one of mindckpt's
documented errors.  ``MINDCKPT_FUZZ_EXAMPLES`` sets the examples per test (default 150);
``MINDCKPT_FUZZ_RANDOM=1`` draws new examples each run (CI derandomizes).  The crash inputs found
so far are regression cases in test_hostile.py.  ``atheris_fuzz.py`` is the coverage-guided
local run (``python tests/reliability/atheris_fuzz.py ckpt|safetensors|gcm -atheris_runs=N``).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mindckpt as ms
from mindckpt.errors import CheckpointError

from kinds import KEY, KINDS, bounded, suffix

HERE = os.path.dirname(__file__)


def _valid(kind: str) -> bytes:
    import tempfile

    d = {"w": ms.Parameter(ms.Tensor(np.arange(12, dtype=np.float32).reshape(3, 4))),
         "e": ms.Parameter(ms.Tensor(np.array(5, np.int64))),
         "h": ms.Parameter(ms.Tensor(np.ones((2, 0, 3), np.float16)))}
    if not kind.startswith("safetensors"):
        d["s"] = "text ✓"
    with tempfile.TemporaryDirectory() as t, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = os.path.join(t, "v" + suffix(kind))
        ms.save_checkpoint(d, p, **KINDS[kind][0])
        return open(p, "rb").read()


VALID = {k: _valid(k) for k in ("plain", "crc", "gcm", "cbc", "safetensors", "safetensors_crc")}


@st.composite
def damaged(draw, blob: bytes) -> bytes:
    b = bytearray(blob)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "cut", "splice"]))
        if not b:
            break
        i = draw(st.integers(0, len(b) - 1))
        if op == "flip":
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            b[i] = draw(st.sampled_from([0, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x1A, 0x22, 0x5B, 0x7B]))
        elif op == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=12))
        elif op == "delete":
            del b[i:i + draw(st.integers(1, 12))]
        elif op == "cut":
            del b[i:]
        else:
            j = draw(st.integers(0, len(b) - 1))
            n = draw(st.integers(1, 32))
            b[i:i + n] = b[j:j + n]
    return bytes(b)


def check_load(tmp_path, data: bytes, kind: str) -> None:
    p = tmp_path / ("f" + suffix(kind))
    p.write_bytes(data)
    try:
        with warnings.catch_warnings(), bounded():
            warnings.simplefilter("ignore")
            ms.load_checkpoint(str(p), **KINDS[kind][1])
    except CheckpointError:
        pass
    except ValueError as exc:
        if "empty" not in str(exc):
            raise AssertionError(f"undocumented {type(exc).__name__}: {exc}") from exc


@pytest.mark.parametrize("kind", list(VALID))
@settings(settings.get_profile("reliability"))
@given(data=st.data())
def test_fuzz_damaged_files(tmp_path, kind, data):
    check_load(tmp_path, data.draw(damaged(VALID[kind])), kind)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 1 << 64) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=12,
)
entry = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "BOOL", "U8", "F8_E4M3", "X"]) | json_values,
    "shape": st.lists(st.integers(-1, 1 << 63) | st.sampled_from([0, 1, 2, 3]), max_size=70) | json_values,
    "data_offsets": st.lists(st.integers(-1, 64), min_size=0, max_size=3) | json_values,
})


@settings(settings.get_profile("reliability"))
@given(header=st.dictionaries(st.text(max_size=5), entry | json_values, max_size=5),
       meta=st.none() | json_values, data=st.binary(max_size=64))
def test_fuzz_safetensors_headers(tmp_path, header, meta, data):
    if meta is not None:
        header["__metadata__"] = meta
    raw = json.dumps(header).encode()
    check_load(tmp_path, struct.pack("<Q", len(raw)) + raw + data, "safetensors")


@settings(settings.get_profile("reliability"))
@given(blob=st.binary(max_size=300))
def test_fuzz_random_bytes_all_kinds(tmp_path, blob):
    for kind in ("plain", "gcm", "safetensors"):
        check_load(tmp_path, blob, kind)
    from mindckpt.codecs.crypto import sniff_cipher  # encrypted-looking heads too

    if sniff_cipher(blob[:4]) is None:
        check_load(tmp_path, VALID["gcm"][:4] + blob, "gcm")


def test_atheris_local_run_if_installed(tmp_path):
    pytest.importorskip("atheris", reason="atheris is the optional local fuzzer (pip install atheris)")
    for target in ("ckpt", "safetensors", "gcm"):
        r = subprocess.run([sys.executable, os.path.join(HERE, "atheris_fuzz.py"), target,
                            "-atheris_runs=2000"], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


assert KEY  # the key the encrypted kinds use (kinds.py)
