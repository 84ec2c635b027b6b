"""Progress: a bar on a terminal (tqdm, or the plain fallback), nothing otherwise or with -q;
the library reports ``progress(done, total)``."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys

import numpy as np
import pytest
from clirun import ENTRY_POINT, KEY16

import mindckpt as ms
from mindckpt.cli import _progress
from mindckpt.diff import diff_checkpoints
from mindckpt.tools import convert_checkpoint, rekey_checkpoint
from mindckpt.verify import verify_checkpoint


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_when_not_a_terminal_or_quiet():
    assert isinstance(_progress.bar("x", stream=io.StringIO()), _progress.NullBar)
    assert isinstance(_progress.bar("x", quiet=True, stream=_Tty()), _progress.NullBar)
    assert isinstance(_progress.bar("x", stream=_Tty()), _progress.Bar)


@pytest.mark.parametrize("use_tqdm", [True, False])
def test_bar_draws_after_the_delay(use_tqdm):
    if use_tqdm:
        pytest.importorskip("tqdm")
    stream = _Tty()
    b = _progress.Bar("convert x", stream, delay=0.0, use_tqdm=use_tqdm)
    for done in range(0, 101 << 20, 10 << 20):
        b(done, 100 << 20)
    b.close()
    text = stream.getvalue()
    assert "convert x" in text and "100" in text
    quiet = _Tty()
    late = _progress.Bar("y", quiet, delay=3600.0, use_tqdm=use_tqdm)
    late(1, 2)
    late.close()
    assert quiet.getvalue() == ""


def _calls():
    seen: list[tuple[int, int]] = []
    return seen, lambda done, total: seen.append((done, total))


def _check(seen):
    assert seen, "progress never called"
    total = seen[-1][1]
    assert seen[-1][0] == total and total > 0
    assert all(0 <= d <= t for d, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_library_functions_report_done_and_total(tmp_path):
    a = tmp_path / "a.ckpt"
    ms.save_checkpoint({"w": ms.Parameter(np.arange(50000, dtype=np.float32))}, str(a),
                       crc_check=True)
    for fn in (
        lambda p: verify_checkpoint(str(a), progress=p),
        lambda p: diff_checkpoints(str(a), str(a), progress=p),
        lambda p: convert_checkpoint(str(a), str(tmp_path / "b.safetensors"), progress=p),
        lambda p: rekey_checkpoint(str(a), str(tmp_path / "e.ckpt"),
                                   enc_key=bytes.fromhex(KEY16), progress=p),
    ):
        seen, cb = _calls()
        fn(cb)
        _check(seen)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a pty")
def test_a_terminal_gets_a_bar_a_pipe_does_not(tmp_path):
    src = tmp_path / "a.ckpt"
    ms.save_checkpoint({"w": ms.Parameter(np.zeros(1 << 20, np.float32))}, str(src))
    env = {**os.environ, "MINDCKPT_PROGRESS_DELAY": "0"}
    master, slave = pty.openpty()
    try:  # keep our end of the slave open until the output is read: no EIO, nothing lost
        proc = subprocess.run([str(ENTRY_POINT), "convert", str(src), str(tmp_path / "b.ckpt")],
                              stdout=subprocess.PIPE, stderr=slave, env=env, timeout=300)
        chunks = []
        while select.select([master], [], [], 0.5)[0]:
            data = os.read(master, 65536)
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 0
    assert b"convert" in b"".join(chunks)
    piped = subprocess.run([str(ENTRY_POINT), "convert", str(src), str(tmp_path / "c.ckpt")],
                           capture_output=True, env=env, timeout=300)
    assert piped.returncode == 0 and piped.stderr == b""
