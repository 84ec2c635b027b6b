"""mindckpt.async_writer: snapshot consistency, one save in flight, errors raised at a known call.

The module functions (``submit``/``wait``/``thread_status``: the default writer, what
``save_checkpoint(async_save=...)`` uses) and :class:`AsyncWriter` instances."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import ml_dtypes
import numpy as np
import pytest

from mindckpt import async_writer as _async
from mindckpt.async_writer import AsyncWriter, default_writer
from mindckpt.formats.records import Record
from mindckpt.errors import AsyncSaveError


@pytest.fixture(autouse=True)
def _drain():
    _async.wait()
    yield
    try:
        _async.wait()
    except AsyncSaveError:
        pass


def _npz_writer(path):
    """write(records) -> an .npz of the records (strings stored as 0-d unicode arrays)."""

    def write(records):
        arrays = {name: (np.array(v) if isinstance(v, str) else np.array(v)) for name, v in records}
        tmp = path + ".part"
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)

    return write


@pytest.mark.parametrize("mode", ["thread", True, "process"])
def test_snapshot_is_taken_at_submit(tmp_path, mode):
    a = np.arange(1000, dtype=np.float32)
    b = np.ones((7, 5), dtype=np.int64)[:, ::2]  # non-contiguous view
    c = np.array(3.5, dtype=ml_dtypes.bfloat16)  # 0-d bf16
    d = np.zeros((0, 3), dtype=np.float16)  # zero-size
    gate = threading.Event()
    path = str(tmp_path / "snap.npz")
    inner = _npz_writer(path)

    def slow_write(records):
        gate.wait(5) if mode != "process" else time.sleep(0.3)
        inner(records)

    records = [("a", a), ("b", b), ("c", c), ("d", d), ("s", "text")]
    expect = {k: np.array(v, copy=True) for k, v in records if not isinstance(v, str)}
    _async.submit(records, slow_write, mode)
    # Mutate everything right after submit returns.
    a[:] = -1
    b[:] = -1
    c[...] = -1
    gate.set()
    _async.wait()
    with np.load(path) as z:
        for k, v in expect.items():
            got = z[k]
            if k == "c":
                got = got.view(ml_dtypes.bfloat16) if got.dtype != v.dtype else got
            np.testing.assert_array_equal(got.astype(np.float64), v.astype(np.float64))
            assert got.shape == v.shape
        assert str(z["s"]) == "text"


def test_arena_is_reused_and_grows_only_when_needed():
    calls = []
    _async.submit([("x", np.ones(1 << 20, np.uint8))], calls.append, "thread")
    _async.wait()
    buf1 = default_writer()._arena.buffer
    cap1 = default_writer()._arena.capacity
    assert cap1 >= 1 << 20
    _async.submit([("x", np.ones(1000, np.uint8))], calls.append, "thread")
    _async.wait()
    assert default_writer()._arena.buffer is buf1  # smaller save: same buffer
    _async.submit([("x", np.ones(cap1 + 1, np.uint8))], calls.append, "thread")
    _async.wait()
    assert default_writer()._arena.capacity > cap1
    # records handed to write() are views into the arena, not fresh copies
    assert calls[-1][0][1].base is not None


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_background_error_raised_at_wait_once(mode):
    def boom(records):
        raise OSError(28, "No space left on device")

    _async.submit([("a", np.zeros(3))], boom, mode)
    with pytest.raises(AsyncSaveError, match="No space left on device") as info:
        _async.wait()
    if mode == "thread":
        assert isinstance(info.value.__cause__, OSError)
    _async.wait()  # raised once only


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_background_error_raised_at_next_save_which_does_not_start(tmp_path, mode):
    def boom(records):
        raise ValueError("Encrypt failed")

    _async.submit([("a", np.zeros(3))], boom, mode)
    ran = []
    with pytest.raises(AsyncSaveError, match="Encrypt failed"):
        _async.submit([("a", np.zeros(3))], ran.append, mode)
    time.sleep(0.1)
    assert not ran
    _async.submit([("a", np.zeros(3))], ran.append, "thread")
    _async.wait()
    assert len(ran) == 1


def test_one_save_in_flight_next_one_waits():
    order = []
    release = threading.Event()

    def first(records):
        release.wait(5)
        order.append("first")

    def second(records):
        order.append("second")

    _async.submit([("a", np.zeros(1))], first, "thread")
    assert _async.thread_status()
    t = threading.Thread(target=_async.submit, args=([("a", np.zeros(1))], second, "thread"))
    t.start()
    time.sleep(0.2)
    assert order == []  # the second submit is blocked behind the first save
    release.set()
    t.join(5)
    _async.wait()
    assert order == ["first", "second"]
    assert not _async.thread_status()


def test_process_status_and_killed_child():
    def sleeper(records):
        time.sleep(30)

    _async.submit([("a", np.zeros(1))], sleeper, "process")
    assert _async.thread_status()
    os.kill(default_writer()._job.pid, 9)
    with pytest.raises(AsyncSaveError, match="signal 9"):
        _async.wait()
    assert not _async.thread_status()


def test_deprecated_status_warns():
    with pytest.warns(DeprecationWarning, match="deprecated from version 2.5"):
        assert _async.async_ckpt_thread_status() is False


def test_bad_value_type_rejected_in_caller():
    with pytest.raises(TypeError, match="record 'x'"):
        _async.submit([("x", [1, 2])], lambda r: None, "thread")


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_error_at_exit_is_printed_and_exit_status_nonzero(mode):
    code = textwrap.dedent(
        f"""
        import numpy as np, time
        from mindckpt import async_writer as _async
        def boom(records):
            time.sleep(0.2)
            raise OSError(28, "No space left on device")
        _async.submit([("a", np.zeros(3))], boom, {mode!r})
        print("main done", flush=True)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "main done" in proc.stdout
    assert proc.returncode == 1
    assert "No space left on device" in proc.stderr
    assert "AsyncSaveError" in proc.stderr


def test_successful_save_at_exit_completes(tmp_path):
    path = tmp_path / "late.bin"
    code = textwrap.dedent(
        f"""
        import numpy as np, time
        from mindckpt import async_writer as _async
        def slow(records):
            time.sleep(0.5)
            open({str(path)!r}, "wb").write(records[0][1].tobytes())
        _async.submit([("a", np.arange(4, dtype=np.uint8))], slow, "thread")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert path.read_bytes() == bytes([0, 1, 2, 3])


# ------------------------------------------------------------------ AsyncWriter instances
def test_explicit_target_named_in_error():
    w = AsyncWriter()

    def boom(records):
        raise OSError(5, "I/O error")

    w.submit([Record("a", np.zeros(3))], boom, target="s3://bucket/run/m-1_1.ckpt", mode="thread")
    with pytest.raises(AsyncSaveError, match=r"s3://bucket/run/m-1_1\.ckpt failed: OSError"):
        w.wait()
    w.close()


def test_snapshot_keeps_record_fields():
    got = []
    w = AsyncWriter()
    a = np.arange(4, dtype=np.int8)
    w.submit([Record("q", a, "Int4"), ("plain", a), Record("s", "text")], got.extend,
             target="t", mode="thread")
    w.close()
    q, plain, s = got
    assert isinstance(q, Record) and q.name == "q" and q.dtype == "Int4"
    assert q.value is not a and np.array_equal(q.value, a)
    assert type(plain) is tuple and len(plain) == 2 and plain[0] == "plain"
    assert s == Record("s", "text")


def test_two_writers_do_not_wait_on_each_other():
    release = threading.Event()
    slow, fast = AsyncWriter(), AsyncWriter()
    done = []
    slow.submit([("a", np.zeros(1))], lambda r: release.wait(5), target="slow", mode="thread")
    fast.submit([("a", np.zeros(1))], lambda r: done.append(1), target="fast", mode="thread")
    fast.wait()  # returns while the other writer's save is still blocked
    assert done == [1] and slow.running and not fast.running
    assert not default_writer().running  # the default writer is a third, idle one
    release.set()
    slow.close()
    fast.close()


def test_close_waits_frees_arena_and_refuses_new_saves():
    w = AsyncWriter()
    out = []
    w.submit([("a", np.ones(1 << 16, np.uint8))], out.append, target="t", mode="thread")
    assert w.target == "t"
    w.close()
    assert out and w._arena.capacity == 0 and w.target is None
    with pytest.raises(RuntimeError, match="closed"):
        w.submit([("a", np.zeros(1))], out.append, target="t")
    w.close()  # harmless twice


def test_bad_mode_rejected_like_save_checkpoint():
    w = AsyncWriter()
    with pytest.raises(ValueError, match="can only be 'process' or 'thread'"):
        w.submit([("a", np.zeros(1))], print, target="t", mode="fork")
    with pytest.raises(TypeError, match="must be bool or str"):
        w.submit([("a", np.zeros(1))], print, target="t", mode=1)
    with pytest.raises(ValueError, match="mode must be"):
        w.submit([("a", np.zeros(1))], print, target="t", mode=False)


def test_error_of_a_second_writer_at_exit(tmp_path):
    code = textwrap.dedent(
        """
        import numpy as np
        from mindckpt.async_writer import AsyncWriter
        w = AsyncWriter()
        def boom(records):
            raise OSError(28, "No space left on device")
        w.submit([("a", np.zeros(3))], boom, target="own-writer.ckpt", mode="thread")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "own-writer.ckpt" in proc.stderr


def test_prepare_sizes_and_faults_the_arena_before_the_first_save(tmp_path):
    from mindckpt._api import plan_save, run_save
    from mindckpt.collect import collect

    model = {f"w{i}": np.full((256, 257), i, np.float32) for i in range(6)}
    w = AsyncWriter()
    w.prepare(collect(model))  # background
    w.prepare(collect(model))  # already (being) prepared: no second arena
    run_save(plan_save(model, str(tmp_path / "p.ckpt"), async_save=True), w)
    buffer = w._arena.buffer
    assert w._arena.capacity >= sum(a.nbytes for a in model.values())
    run_save(plan_save(model, str(tmp_path / "q.ckpt"), async_save=True), w)
    assert w._arena.buffer is buffer  # the prepared arena is the one used
    w.close()
    import mindckpt as ms

    got = ms.load_checkpoint(str(tmp_path / "p.ckpt"))
    np.testing.assert_array_equal(got["w5"].asnumpy(), model["w5"])


def test_model_checkpoint_prepares_its_writer_when_training_begins(tmp_path):
    from mindckpt.train import CheckpointConfig, ModelCheckpoint, RunContext
    from mindckpt.train.callback import InternalCallbackParam

    net = {"w": np.ones((512, 512), np.float32)}
    cb = ModelCheckpoint("p", str(tmp_path), CheckpointConfig(async_save=True,
                                                              saved_network=None))
    params = InternalCallbackParam(train_network=net, cur_step_num=0, cur_epoch_num=1,
                                   batch_num=1, epoch_num=1)
    cb.on_train_begin(RunContext(params))
    cb._writer._join_prepare()
    assert cb._writer._arena.capacity >= 512 * 512 * 4
    cb.close()
