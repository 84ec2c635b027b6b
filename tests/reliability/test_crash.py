"""Crash consistency: a saver killed with SIGKILL at a random point never costs a checkpoint.

A fork server (``_crash_zygote.py``, mindckpt imported once) forks one saver per run, which
overwrites a good checkpoint of generation 1 with generation 2; the test kills its process
group after a random delay drawn over the measured length of an unkilled save, then checks:

* the file under the final name is complete and loadable, of generation 1 or 2 (never mixed,
  never partial; with CRC or GCM its integrity check passes);
* no other file under a final name (only the store's hidden temp pattern);
* the next save to the directory succeeds and removes the temp files the dead writer left.

Cases: plain, CRC, AES-GCM and safetensors, each synchronous, with the thread async writer and
with the process async writer; and ModelCheckpoint with retention (keep 2), killed mid-run.
``MINDCKPT_CRASH_RUNS`` sets the runs per case (default 20, half that with the process writer,
2/5 of it per ModelCheckpoint case: 208 runs in all).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import mindckpt as ms
from mindckpt.storage.base import default_durable, set_default_durable
from mindckpt.storage.local import TEMP_PATTERN

from kinds import KINDS, generation, params, suffix

HERE = os.path.dirname(__file__)
RUNS = int(os.environ.get("MINDCKPT_CRASH_RUNS", "20"))  # per case; half for "process"
SAVE_KINDS = ["plain", "crc", "gcm", "safetensors"]
MODES = ["sync", "thread", "process"]
FIGURES: dict[str, dict[str, int]] = {}
SIZES = {"gcm": 1 << 12}  # floats per tensor (8 tensors); AES-GCM saves run at ~10 MB/s


class Zygote:
    def __init__(self) -> None:
        # a SIGKILL loses no page-cache data: fsync only slows the runs down (the fault
        # injection tests cover the fsync steps)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), MINDCKPT_FSYNC="0")
        self.p = subprocess.Popen([sys.executable, os.path.join(HERE, "_crash_zygote.py")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=env, start_new_session=True)
        assert self.ask(None) == "ready"

    def ask(self, line: str | None) -> str:
        if line is not None:
            self.p.stdin.write(line + "\n")
            self.p.stdin.flush()
        got = self.p.stdout.readline().strip()
        if not got:
            raise RuntimeError("the fork server died")
        return got

    def start(self, spec: dict) -> int:
        return int(self.ask("run " + json.dumps(spec)).split()[1])

    def reap(self, pid: int) -> int:
        return int(self.ask(f"reap {pid}").split()[1])

    def run(self, spec: dict, kill_after: float | None) -> tuple[bool, float]:
        """Run one save; kill it after ``kill_after`` seconds; return (killed, seconds)."""
        t0 = time.monotonic()
        pid = self.start(spec)
        killed = False
        if kill_after is not None:
            time.sleep(kill_after)
            try:
                os.killpg(pid, signal.SIGKILL)
                killed = True
            except ProcessLookupError:
                pass  # finished first (or before setpgid: the plain kill below)
            try:
                os.kill(pid, signal.SIGKILL)
                killed = True
            except ProcessLookupError:
                pass
        status = self.reap(pid)
        if os.WIFEXITED(status):
            killed = False
            assert os.WEXITSTATUS(status) == 0, "an unkilled save failed (see stderr)"
        with_orphans_gone(pid)
        return killed, time.monotonic() - t0

    def close(self) -> None:
        try:
            self.ask("quit")
        except (RuntimeError, BrokenPipeError, ValueError):
            pass
        self.p.wait(timeout=10)


def with_orphans_gone(pgid: int) -> None:
    """Wait until no process of the killed group is left (a process-mode writer)."""
    for _ in range(200):
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.01)


@pytest.fixture(scope="module")
def zygote():
    was = default_durable()
    set_default_durable(False)
    z = Zygote()
    yield z
    z.close()
    set_default_durable(was)
    if FIGURES:
        print("\ncrash consistency: case runs killed old new temps_left_by_kill temps_removed")
        for case, f in FIGURES.items():
            print(f"  {case:28s} {f['runs']:4d} {f['killed']:4d} {f['old']:4d} {f['new']:4d} "
                  f"{f['temps']:4d} {f['removed']:4d}")


def temps(directory: str) -> list[str]:
    return [n for n in os.listdir(directory) if TEMP_PATTERN.match(n)]


def age_temps(directory: str) -> None:
    """Make leftover temp files look old: a 0-byte temp file younger than a few seconds may
    belong to a writer that has created but not yet locked it, so the store leaves it."""
    past = time.time() - 60
    for n in temps(directory):
        os.utime(os.path.join(directory, n), (past, past))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", SAVE_KINDS)
def test_killed_save_keeps_old_or_new(zygote, tmp_path, kind, mode):
    save_kw, load_kw, _ = KINDS[kind]
    path = str(tmp_path / ("model" + suffix(kind)))
    size = SIZES.get(kind, 1 << 15)
    spec = {"kind": kind, "mode": mode, "path": path, "gen": 2, "size": size}
    ms.save_checkpoint(params(1, size=size), path, **save_kw)
    _, length = zygote.run(spec, None)  # an unkilled save: how long one takes
    rng = random.Random(f"{kind}-{mode}")
    fig = FIGURES.setdefault(f"{kind}/{mode}", dict.fromkeys(
        ("runs", "killed", "old", "new", "temps", "removed"), 0))
    for run in range(RUNS if mode != "process" else max(2, RUNS // 2)):
        ms.save_checkpoint(params(1, size=size), path, **save_kw)
        killed, _ = zygote.run(spec, rng.uniform(0, length * 0.9))
        finals = [n for n in os.listdir(tmp_path) if not TEMP_PATTERN.match(n)]
        assert finals == [os.path.basename(path)], f"run {run}: files {finals}"
        gen = generation(ms.load_checkpoint(path, **load_kw), size=size)
        left = temps(str(tmp_path))
        fig["runs"] += 1
        fig["killed"] += killed
        fig["old" if gen == 1 else "new"] += 1
        fig["temps"] += bool(left)
        if not killed:
            assert gen == 2 and not left
        # the next save removes what the dead writer left, and succeeds
        age_temps(str(tmp_path))
        ms.save_checkpoint(params(1, size=size), path, **save_kw)
        assert temps(str(tmp_path)) == [], f"run {run}: stale temp files stay: {left}"
        fig["removed"] += bool(left)
        assert generation(ms.load_checkpoint(path, **load_kw), size=size) == 1
    assert fig["killed"] > 0, "no run was killed mid-save: the delays miss the save"


def _values(loaded: dict) -> int:
    """The step a ModelCheckpoint file holds (every value equals it), or raise."""
    vals = {float(v) for p in loaded.values() for v in np.unique(p.asnumpy())}
    assert len(vals) == 1, f"mixed values {sorted(vals)[:4]}"
    assert len(loaded) == len(params(0, 8, 8))
    return int(vals.pop())


@pytest.mark.parametrize("kind", ["plain", "safetensors"])
def test_killed_model_checkpoint_with_retention(zygote, tmp_path, kind):
    keep, steps = 2, 6
    spec = {"kind": kind, "mode": "modelcheckpoint", "dir": str(tmp_path), "prefix": "net",
            "keep": keep, "steps": steps}
    _, length = zygote.run(spec, None)
    _, load_kw, _ = KINDS[kind]
    fig = FIGURES.setdefault(f"{kind}/ModelCheckpoint", dict.fromkeys(
        ("runs", "killed", "old", "new", "temps", "removed"), 0))
    rng = random.Random(kind)
    for run in range(max(2, RUNS * 2 // 5)):
        for n in os.listdir(tmp_path):
            os.chmod(tmp_path / n, 0o600)
            os.remove(tmp_path / n)
        killed, _ = zygote.run(spec, rng.uniform(0, length))
        finals = sorted(n for n in os.listdir(tmp_path) if not TEMP_PATTERN.match(n)
                        and not n.endswith(".meta"))
        assert len(finals) <= keep + 1, f"run {run}: retention left {finals}"
        for n in finals:  # every file under a final name is complete
            step = _values(ms.load_checkpoint(str(tmp_path / n), **load_kw))
            assert f"_{step}." in n, f"{n} holds step {step}"
        left = temps(str(tmp_path))
        fig["runs"] += 1
        fig["killed"] += killed
        fig["new" if not killed else "old"] += 1
        fig["temps"] += bool(left)
        age_temps(str(tmp_path))
        zygote.run(spec, None)  # a later run cleans up and keeps the newest `keep`
        finals = sorted(n for n in os.listdir(tmp_path) if not TEMP_PATTERN.match(n)
                        and not n.endswith(".meta"))
        assert temps(str(tmp_path)) == []
        by_prefix: dict[str, int] = {}
        for n in finals:  # a second run takes a new prefix (net_1-...), as MindSpore does
            by_prefix[n.split("-")[0]] = by_prefix.get(n.split("-")[0], 0) + 1
            _values(ms.load_checkpoint(str(tmp_path / n), **load_kw))
        # the new run keeps `keep`; a killed run may leave keep + 1 of its own (it publishes
        # the new file before removing the oldest, so it never holds fewer than `keep`)
        newest = max(finals, key=lambda n: os.stat(tmp_path / n).st_mtime_ns).split("-")[0]
        assert by_prefix.pop(newest) <= keep, finals
        assert max(by_prefix.values(), default=0) <= keep + 1, finals
        fig["removed"] += bool(left)
    assert fig["killed"] > 0
