"""ModelCheckpoint parity with real MindSpore 2.10 (run in a subprocess; skipped without it).

The same driver (_ckpt_scenarios.py) runs once under MindSpore's interpreter
(found as tests/interop/ms_oracle.py finds it) and once under ours; every scenario must
produce the same file names with the same bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys

import ms_oracle
import pytest

import mindckpt as ms

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(HERE, "_ckpt_scenarios.py")

pytestmark = pytest.mark.mindspore


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    ms_oracle.require_mindspore()  # skips, or fails where MINDCKPT_REQUIRE_MINDSPORE=1 (CI)
    MS_PYTHON = ms_oracle.ms_python()
    base = tmp_path_factory.mktemp("parity")
    dirs = {}
    for lib, py in (("mindspore", MS_PYTHON), ("mindckpt", sys.executable)):
        out = str(base / lib)
        proc = subprocess.run(
            [py, DRIVER, lib, out], capture_output=True, text=True, timeout=600, cwd=str(base)
        )
        assert proc.returncode == 0 and "DONE" in proc.stdout, proc.stderr[-3000:]
        dirs[lib] = out
    return dirs


def _listing(root):
    out = {}
    for scenario in sorted(os.listdir(root)):
        out[scenario] = sorted(os.listdir(os.path.join(root, scenario)))
    return out


SCENARIOS = [
    "steps2",
    "steps3",
    "steps7",
    "steps100",
    "never",
    "initial_epoch",
    "stop",
    "keep2",
    "keep3_async",
    "append",
    "append_offset",
    "crc",
    "safetensors",
    "callable_prefix",
    "three_runs",
]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_files_same_bytes(outputs, scenario):
    a = os.path.join(outputs["mindspore"], scenario)
    b = os.path.join(outputs["mindckpt"], scenario)
    names_ms = sorted(os.listdir(a))
    assert sorted(os.listdir(b)) == names_ms
    for name in names_ms:
        with open(os.path.join(a, name), "rb") as fa, open(os.path.join(b, name), "rb") as fb:
            ba, bb = fa.read(), fb.read()
        if name.endswith(".safetensors"):
            # safetensors (Rust) writes the __metadata__ keys in hash order: compare parsed.
            assert _parse_safetensors(ba) == _parse_safetensors(bb), name
        else:
            assert ba == bb, name


def _parse_safetensors(blob):
    import json
    import struct

    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def test_expected_names(outputs):
    got = _listing(outputs["mindspore"])
    assert got["steps2"] == ["m-1_2.ckpt", "m-1_4.ckpt", "m-2_1.ckpt", "m-2_3.ckpt", "m-2_5.ckpt"]
    assert got["never"] == []
    assert got["keep2"] == ["k-2_4.ckpt", "k-2_5.ckpt"]
    assert got["three_runs"] == ["run-1_5.ckpt", "run_1-1_5.ckpt", "run_2-1_5.ckpt"]
    d = ms.load_checkpoint(os.path.join(outputs["mindckpt"], "append_offset", "a-1_2.ckpt"))
    assert int(d["epoch_num"].asnumpy()) == 6 and int(d["step_num"].asnumpy()) == 52
