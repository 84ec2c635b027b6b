"""Crash consistency on S3: writers killed with SIGKILL at random moments, the network cut
mid-upload, readers polling during saves.  The previous object always survives whole, no
partial object is ever visible, and unfinished uploads are listed (then cleaned up)."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import threading
import time

import pytest
import workers
from workers import MiB, pattern

from mindckpt.errors import StorageError
from mindckpt.storage.fsspec import FsspecStore

SIZE = 11 * MiB  # three parts of 5, 5 and 1 MiB


@pytest.fixture(scope="module")
def forkserver():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["workers", "s3fs", "numpy", "mindckpt",
                                "mindckpt.storage.fsspec"])
    return ctx


def _run_and_kill(ctx, target, args, delay):
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(*args, child), daemon=True)
    proc.start()
    if not parent.poll(60):
        proc.kill()
        raise AssertionError("the saving child did not start")
    assert parent.recv() == "ready"
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    done = []
    while parent.poll():
        done.append(parent.recv())
    return done


def _seed_of(body: bytes) -> int | None:
    """The seed of a whole object written by workers.save_forever, None for anything else."""
    if len(body) != SIZE:
        return None
    seed = body[0] * pow(31, -1, 256) % 256
    return seed if body == pattern(SIZE, seed) else None


@pytest.mark.slow
def test_sigkill_mid_save_keeps_old_or_new_whole(forkserver, moto_server, bucket, boto):
    store = workers.s3_store(moto_server.endpoint)
    key = f"{bucket}/run/net.ckpt"
    store.write_bytes(key, pattern(SIZE, 0))
    rng = random.Random(8)
    last = 0
    killed_mid_upload = 0
    for run in range(24):
        base = 10 * run + 1  # this run saves seeds base, base + 1, ...
        done = _run_and_kill(forkserver, workers.save_forever,
                             (moto_server.endpoint, key, SIZE, base), rng.uniform(0.0, 0.9))
        body = boto.get_object(Bucket=bucket, Key="run/net.ckpt")["Body"].read()
        seed = _seed_of(body)
        assert seed is not None, f"run {run}: a partial or mixed object is visible"
        assert seed >= (done[-1] if done else last), f"run {run}: a completed save was lost"
        assert {i.name for i in store.list(f"{bucket}/run")} == {"net.ckpt"}
        ups = store.incomplete_uploads(f"{bucket}/run")
        killed_mid_upload += bool(ups)
        # the dead writer's upload is listed; cleaning it up never touches the object
        store.abort_incomplete_uploads(f"{bucket}/run", older_than=0,
                                       now=lambda: float("inf"))
        assert store.incomplete_uploads(f"{bucket}/run") == []
        # (a completion sent just before the kill may still land: whole, never partial)
        last = _seed_of(store.read_bytes(key))  # type: ignore[assignment]
        assert last is not None and last >= seed
    assert killed_mid_upload >= 3, killed_mid_upload  # the kills did land inside uploads


def test_network_cut_mid_upload_keeps_old(proxied_fs, proxy, bucket, boto):
    store = FsspecStore(proxied_fs, part_size=5 * MiB, max_concurrency=2)
    key = f"{bucket}/run/net.ckpt"
    store.write_bytes(key, b"old checkpoint")
    data = pattern(SIZE, 1)
    with pytest.raises(StorageError, match=rf"s3://{key}: the connection failed") as info:
        with pytest.warns(RuntimeWarning, match="stays listed"):
            with store.open_write(key) as w:
                for i in range(0, SIZE, MiB):
                    if i == 6 * MiB:
                        proxy.drop()  # one part in flight or sent, the upload open
                    w.write(data[i:i + MiB])
    assert "unchanged" in str(info.value)
    proxy.restore()
    assert boto.get_object(Bucket=bucket, Key="run/net.ckpt")["Body"].read() == b"old checkpoint"
    assert store.read_bytes(key) == b"old checkpoint"
    [up] = store.incomplete_uploads(f"{bucket}/run")  # the abort could not reach the server
    assert up.key == key
    store.abort_incomplete_uploads(f"{bucket}/run", older_than=0, now=lambda: float("inf"))
    assert store.incomplete_uploads(f"{bucket}/run") == []


def test_network_cut_at_complete_keeps_old(proxied_fs, proxy, bucket, monkeypatch):
    from mindckpt.storage import s3 as S3

    store = FsspecStore(proxied_fs, part_size=5 * MiB, max_concurrency=2)
    key = f"{bucket}/run/net.ckpt"
    store.write_bytes(key, b"old")
    real_publish = S3.MultipartPending.publish

    def publish(self):
        while self.inflight:
            self._reap()
        proxy.drop()  # every part is in; the completion cannot get through
        return real_publish(self)

    monkeypatch.setattr(S3.MultipartPending, "publish", publish)
    with pytest.raises(StorageError, match="connection failed"), pytest.warns(RuntimeWarning):
        store.write_bytes(key, pattern(SIZE, 2))
    monkeypatch.undo()
    proxy.restore()
    assert store.read_bytes(key) == b"old"


def test_reader_polling_during_saves_sees_old_or_new(moto_server, bucket):
    writer = workers.s3_store(moto_server.endpoint, part_size=5 * MiB, max_concurrency=2)
    reader = workers.s3_store(moto_server.endpoint, read_chunk=2 * MiB, head_bytes=256 << 10)
    key = f"{bucket}/run/net.ckpt"
    old, new = pattern(SIZE, 1), pattern(SIZE + 3 * MiB, 2)
    writer.write_bytes(key, old)
    seen: list[bytes] = []
    replaced = 0
    stop = threading.Event()

    def poll():
        nonlocal replaced
        while not stop.is_set():
            try:
                seen.append(reader.read_bytes(key))
            except StorageError as exc:
                assert "replaced while it was being read" in str(exc)
                replaced += 1

    t = threading.Thread(target=poll)
    t.start()
    try:
        for _ in range(3):
            writer.write_bytes(key, new)
            writer.write_bytes(key, old)
    finally:
        stop.set()
        t.join()
    assert seen and all(s == old or s == new for s in seen)


@pytest.mark.slow
def test_sigkill_during_save_checkpoint_leaves_a_loadable_checkpoint(forkserver, moto_server,
                                                                     bucket):
    import numpy as np

    import mindckpt

    url = f"s3://{bucket}/train/net.ckpt"
    mindckpt.save_checkpoint({"w0": np.zeros((4, 4), np.float32)}, url)
    rng = random.Random(3)
    steps = set()
    for _run in range(8):
        done = _run_and_kill(forkserver, workers.checkpoint_forever,
                             (moto_server.endpoint, url), rng.uniform(0.2, 2.0))
        got = mindckpt.load_checkpoint(url)  # the previous or the new one, whole
        if "noise" not in got:
            assert not steps and not done  # still the first checkpoint
            continue
        values = {float(np.asarray(got[f"w{i}"].asnumpy()).flat[0]) for i in range(6)}
        assert len(values) == 1, "tensors of two different saves"
        step = int(values.pop())
        assert step >= (done[-1] if done else 0)
        steps.add(step)
    assert steps, "no save ever completed: the kills came too early"


def test_upload_left_open_is_aborted_at_exit(moto_server, bucket):
    """A process that exits (sys.exit, an unhandled exception) with a write still open."""
    import subprocess
    import sys

    store = workers.s3_store(moto_server.endpoint)
    key = f"{bucket}/run/net.ckpt"
    store.write_bytes(key, b"old")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import workers\n"
        "store = workers.s3_store(sys.argv[2], part_size=5 << 20)\n"
        "w = store.open_write(sys.argv[3])\n"
        "w.write(workers.pattern(6 << 20))\n"
        "assert store.incomplete_uploads(sys.argv[3].rsplit('/', 1)[0])\n"
        "raise SystemExit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, os.path.dirname(workers.__file__),
                           moto_server.endpoint, key], capture_output=True, timeout=120)
    assert proc.returncode == 3, proc.stderr.decode()
    assert store.incomplete_uploads(f"{bucket}/run") == []
    assert store.read_bytes(key) == b"old"
