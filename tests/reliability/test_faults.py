"""Fault injection at every OS call of a save, short reads on load, and a real disk-full.

The local store's OS calls are replaced (``mindckpt.storage.local.os`` by a proxy, so nothing
else in the process is touched): first a clean save records the sequence of calls, then each
call in turn fails with ``EIO`` (writes also with ``ENOSPC``).  A failure before the rename
must raise a documented error, leave the old checkpoint as it was and no temp file behind; a
failure after it (closing the file, opening, fsyncing or closing the directory) must raise
``DurabilityError`` with the new checkpoint in place.
"""

from __future__ import annotations

import errno
import os
import random
import resource
import shutil
import signal
import subprocess
import types

import numpy as np
import pytest

import mindckpt as ms
from mindckpt.errors import CheckpointError, DurabilityError, StorageError
from mindckpt.pipeline import open_file
from mindckpt.storage import local
from mindckpt.storage.base import default_durable, set_default_durable
from mindckpt.storage.local import LOCAL, TEMP_PATTERN

from kinds import KINDS, generation, params, suffix

WATCHED = ("open", "write", "fsync", "replace", "close", "fchmod", "preadv")
FIGURES: dict[str, list[int]] = {}


class OsProxy(types.SimpleNamespace):
    """``os`` with some functions recorded and one call made to fail."""

    def __init__(self, fail_at: int | None = None, err: int = errno.EIO,
                 short_reads: random.Random | None = None):
        super().__init__()
        self.calls: list[str] = []
        self.fail_at = fail_at
        self.err = err
        self.short = short_reads

    def __getattr__(self, name):
        real = getattr(os, name)
        if name not in WATCHED:
            return real

        def call(*args, **kw):
            if name == "preadv" and self.short is not None:
                fd, bufs, off = args
                mv = memoryview(bufs[0])
                n = min(len(mv), self.short.randint(1, 7))
                return real(fd, [mv[:n]], off)
            i = len(self.calls)
            self.calls.append(name)
            if i == self.fail_at:
                if name == "close":
                    real(*args, **kw)  # the descriptor is gone either way
                raise OSError(self.err, os.strerror(self.err))
            return real(*args, **kw)

        return call


@pytest.fixture
def durable():
    was = default_durable()
    set_default_durable(True)
    yield
    set_default_durable(was)


def final_names(d) -> list[str]:
    return sorted(n for n in os.listdir(d) if not TEMP_PATTERN.match(n))


def temps(d) -> list[str]:
    return [n for n in os.listdir(d) if TEMP_PATTERN.match(n)]


@pytest.mark.parametrize("kind", ["plain", "crc", "gcm", "safetensors"])
def test_every_os_call_of_a_save_fails_cleanly(tmp_path, monkeypatch, durable, kind):
    save_kw, load_kw, _ = KINDS[kind]
    path = str(tmp_path / ("m" + suffix(kind)))
    ms.save_checkpoint(params(1, 2, 256), path, **save_kw)
    rec = OsProxy()
    monkeypatch.setattr(local, "os", rec)
    ms.save_checkpoint(params(2, 2, 256), path, **save_kw)
    monkeypatch.setattr(local, "os", os)
    sequence = rec.calls
    assert "replace" in sequence and "fsync" in sequence, sequence
    renamed_at = sequence.index("replace")
    fig = FIGURES.setdefault(kind, [0, 0, 0])
    for i, name in enumerate(sequence):
        for err in ((errno.EIO, errno.ENOSPC) if name == "write" else (errno.EIO,)):
            ms.save_checkpoint(params(1, 2, 256), path, **save_kw)
            monkeypatch.setattr(local, "os", OsProxy(fail_at=i, err=err))
            with pytest.raises(CheckpointError) as ei:
                ms.save_checkpoint(params(2, 2, 256), path, **save_kw)
            monkeypatch.setattr(local, "os", os)
            where = f"call {i} ({name}, {errno.errorcode[err]}) of {sequence}"
            assert final_names(tmp_path) == [os.path.basename(path)], where
            assert temps(tmp_path) == [], where
            gen = generation(ms.load_checkpoint(path, **load_kw), 2, 256)
            fig[0] += 1
            if i < renamed_at:
                assert isinstance(ei.value, StorageError), where
                assert not isinstance(ei.value, DurabilityError), where
                assert gen == 1, where
                assert "unchanged" in str(ei.value) or "not written" in str(ei.value), where
                fig[1] += 1
            elif i == renamed_at:
                assert isinstance(ei.value, StorageError) and gen == 1, where
                fig[1] += 1
            else:
                assert isinstance(ei.value, DurabilityError), where
                assert gen == 2, where
                assert "in place" in str(ei.value), where
                fig[2] += 1
            if err == errno.ENOSPC:
                assert "disk space" in str(ei.value), where


def test_figures_of_fault_injection():
    if FIGURES:
        print("\nfault injection: kind injected old_kept(before rename) durability_errors(after)")
        for kind, (n, before, after) in FIGURES.items():
            print(f"  {kind:12s} {n:4d} {before:4d} {after:4d}")


@pytest.mark.parametrize("kind", list(KINDS))
def test_short_reads_are_not_corruption(tmp_path, monkeypatch, kind):
    save_kw, load_kw, _ = KINDS[kind]
    path = str(tmp_path / ("m" + suffix(kind)))
    ms.save_checkpoint(params(3, 3, 1024), path, **save_kw)
    rng = random.Random(kind)
    monkeypatch.setattr(local, "os", OsProxy(short_reads=rng))
    for _ in range(5):
        assert generation(ms.load_checkpoint(path, **load_kw), 3, 1024) == 3
        dec = {k: v for k, v in load_kw.items() if k in ("dec_key", "dec_mode")}
        with open_file(LOCAL, path, crc_check=load_kw.get("crc_check", False), **dec) as r:
            got = r.read(mmap=False)  # through preadv, not a mapping
            assert int(np.asarray(got["gen"].array)) == 3
            assert len(r.index) == len(got)
            assert np.all(r.read_entry("layer2.weight") == 3)


def _big(n_mib: float, gen: int) -> dict:
    n = int(n_mib * (1 << 20) / 4)
    return {"w": ms.Parameter(ms.Tensor(np.full(n, gen, np.float32))),
            "gen": ms.Parameter(ms.Tensor(np.array(gen, np.int64)))}


def _check_disk_full(d: str, kind: str) -> None:
    save_kw, load_kw, _ = KINDS[kind]
    path = os.path.join(d, "m" + suffix(kind))
    ms.save_checkpoint(_big(0.6, 1), path, **save_kw)
    with pytest.raises(StorageError) as ei:
        ms.save_checkpoint(_big(1.5, 2), path, **save_kw)
    assert ei.value.errno in (errno.ENOSPC, errno.EFBIG), ei.value
    assert final_names(d) == [os.path.basename(path)] and temps(d) == []
    got = ms.load_checkpoint(path, **load_kw)
    assert int(got["gen"].asnumpy()) == 1 and np.all(got["w"].asnumpy() == 1)
    ms.save_checkpoint(_big(0.3, 3), path, **save_kw)  # space is back once the temp is gone
    assert int(ms.load_checkpoint(path, **load_kw)["gen"].asnumpy()) == 3


@pytest.fixture
def small_tmpfs(tmp_path):
    d = tmp_path / "small"
    d.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real disk-full needs root to mount a small tmpfs (the RLIMIT_FSIZE "
                    "test covers the rest)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield str(d)
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


@pytest.mark.parametrize("kind", ["plain", "gcm", "safetensors"])
def test_real_disk_full_on_a_small_tmpfs(small_tmpfs, kind):
    _check_disk_full(small_tmpfs, kind)


def test_file_size_limit_in_a_child(tmp_path):
    """RLIMIT_FSIZE (EFBIG) in a forked child: the same promises without root."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
            for kind in ("plain", "safetensors"):
                d = tmp_path / kind
                d.mkdir()
                _check_disk_full(str(d), kind)
            code = 0
        except BaseException as exc:  # noqa: BLE001
            print(f"child: {exc!r}", flush=True)
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
