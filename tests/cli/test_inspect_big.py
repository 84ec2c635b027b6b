"""``mindckpt inspect`` of a 1 GiB file reads under 1 MiB of it and needs under 64 MiB of memory.

The file is sparse (its payloads are holes), so it costs no disk.  The child's I/O counters
(``/proc/<pid>/io``: ``rchar`` counts every byte read through read()/pread(), page cache or
not) are read after it exits and before it is reaped, and its peak RSS comes from ``wait4``.
Both are compared with the same command on a small file, which pays the same imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from clirun import ENTRY_POINT

from mindckpt.formats.ckpt import write_ckpt
from mindckpt.formats.records import Record

GIB = 1 << 30
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")]


class _SparseSink:
    """Writes headers; all-zero pieces of 1 MiB or more become holes."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        mv = memoryview(data).cast("B")
        if len(mv) >= 1 << 20 and not np.frombuffer(mv, np.uint8).any():
            self.f.seek(len(mv), os.SEEK_CUR)
        else:
            self.f.write(mv)
        return len(mv)


def _make(path, n_big: int, small: int = 20) -> int:
    zeros = np.zeros(GIB // 4 // 4, np.float32)  # 256 MiB of untouched (zero) pages
    records = [Record(f"layer{i}.weight", zeros.reshape(8192, -1)) for i in range(n_big)]
    records += [Record(f"layer{i}.bias", np.ones(64, np.float32)) for i in range(small)]
    with open(path, "wb") as f:
        write_ckpt(_SparseSink(f), records, crc=True)
        f.truncate(f.tell())
    return os.path.getsize(path)


def _measure(*args: str) -> tuple[int, int, dict[str, int], str]:
    proc = subprocess.Popen([str(ENTRY_POINT), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ})
    out, err = proc.stdout.read(), proc.stderr.read()  # until it closes them (exits)
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: /proc stays
    with open(f"/proc/{proc.pid}/io") as f:
        io = {k: int(v) for k, v in (line.split(": ") for line in f.read().splitlines())}
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, err.decode()
    return io["rchar"], usage.ru_maxrss * 1024, io, out.decode()


def test_inspect_1gib_reads_under_1mib_and_uses_under_64mib(tmp_path):
    big = tmp_path / "big.ckpt"
    size = _make(big, 4)
    assert size > GIB
    small = tmp_path / "small.ckpt"
    _make(small, 0)
    base_read, base_rss, _, _ = _measure("inspect", str(small), "--json")
    read, rss, io, out = _measure("inspect", str(big), "--json")
    extra_read, extra_rss = read - base_read, rss - base_rss
    print(f"inspect of {size} bytes: rchar {read} (+{extra_read} over a small file), "
          f"read_bytes {io['read_bytes']}, peak RSS {rss >> 20} MiB (+{extra_rss >> 10} KiB)")
    info = json.loads(out)
    assert info["total_bytes"] == GIB + 20 * 64 * 4 and info["entries_total"] == 24
    assert info["crc"]["present"]
    assert extra_read < 1 << 20
    assert extra_rss < 64 << 20
