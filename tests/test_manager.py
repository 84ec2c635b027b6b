"""CheckpointManager: naming, retention after commit through the store, its own async writer."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

import mindckpt as ms
from mindckpt import async_writer, manager as manager_mod, policies
from mindckpt.errors import AsyncSaveError
from mindckpt.manager import CheckpointManager


def net(v=0.0):
    return {"w": np.full((4, 4), v, np.float32), "b": np.arange(3, dtype=np.int64)}


def names(d):
    return sorted(os.listdir(d))


def test_names_retention_latest_all(tmp_path):
    (tmp_path / "m-0_1_breakpoint.ckpt").write_bytes(b"x")
    (tmp_path / "other-1_1.ckpt").write_bytes(b"x")
    (tmp_path / "m_1-1_1.ckpt").write_bytes(b"x")  # another run's file: not ours
    mgr = CheckpointManager(str(tmp_path), "m", retention=policies.RetentionPolicy(2, None))
    keys = [mgr.save(net(i), epoch=1, step=i) for i in range(1, 5)]
    assert keys[-1] == os.path.join(str(tmp_path), "m-1_4.ckpt")
    assert names(tmp_path) == [
        "m-0_1_breakpoint.ckpt", "m-1_3.ckpt", "m-1_4.ckpt", "m_1-1_1.ckpt", "other-1_1.ckpt",
    ]
    assert mgr.all() == keys[2:]
    assert mgr.latest() == keys[-1]
    assert float(ms.load_checkpoint(mgr.latest())["w"].asnumpy()[0, 0]) == 4.0
    mgr.close()
    with pytest.raises(RuntimeError, match="after close"):
        mgr.save(net(), epoch=1, step=9)


def test_retire_earlier_runs(tmp_path):
    for i, name in enumerate(["m-1_1.ckpt", "m-1_2.ckpt", "m_1-1_3.ckpt"]):
        p = tmp_path / name
        p.write_bytes(b"x")
        os.utime(p, (1000 + i, 1000 + i))
    mgr = CheckpointManager(str(tmp_path), "m", retention=policies.RetentionPolicy(2, None),
                            retire=["m", "m_1"])
    mgr.prefix = "m_1"
    mgr.save(net(), epoch=1, step=4)
    assert names(tmp_path) == ["m_1-1_3.ckpt", "m_1-1_4.ckpt"]


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_async_retention_waits_for_completion(tmp_path, mode):
    mgr = CheckpointManager(str(tmp_path), "a", retention=policies.RetentionPolicy(1, None),
                            async_save=mode)
    mgr.save(net(1), epoch=1, step=1)
    mgr.save(net(2), epoch=1, step=2)
    # a-1_1 is retired only once a-1_2 is complete: still there or already replaced, never 0
    assert len([n for n in names(tmp_path) if n.startswith("a-")]) >= 1
    mgr.wait()
    assert names(tmp_path) == ["a-1_2.ckpt"]
    mgr.close()


def test_failed_async_save_deletes_nothing(tmp_path, monkeypatch):
    mgr = CheckpointManager(str(tmp_path), "f", retention=policies.RetentionPolicy(1, None))
    mgr.save(net(), epoch=1, step=1)
    real = manager_mod._plan_and_run

    def failing(save_obj, target, writer, args, kwargs):
        def boom(records):
            raise OSError(28, "No space left on device")

        writer.submit([("x", np.zeros(1))], boom, target=target, mode="thread")

    monkeypatch.setattr(manager_mod, "_plan_and_run", failing)
    mgr.save(net(), epoch=1, step=2, async_save=True)
    with pytest.raises(AsyncSaveError, match="f-1_2.ckpt failed"):
        mgr.wait()
    assert names(tmp_path) == ["f-1_1.ckpt"]
    monkeypatch.setattr(manager_mod, "_plan_and_run", real)
    mgr.close()


def test_user_async_save_does_not_join_manager(tmp_path, monkeypatch):
    """The user's save_checkpoint(async_save=True) runs on the default writer; the manager's
    save and wait never wait for it, nor raise its error."""
    release = threading.Event()
    mgr = CheckpointManager(str(tmp_path / "m"), "m", retention=policies.RetentionPolicy(1, None),
                            async_save=True)

    def blocked(records):
        release.wait(10)
        raise OSError(5, "user's own save failed")

    async_writer.submit([("x", np.zeros(1))], blocked, "thread", target="user.ckpt")
    try:
        mgr.save(net(1), epoch=1, step=1)
        mgr.save(net(2), epoch=1, step=2)
        mgr.wait()  # returns although the user's save is still blocked
        assert async_writer.thread_status()
        assert names(tmp_path / "m") == ["m-1_2.ckpt"]
    finally:
        release.set()
        with pytest.raises(AsyncSaveError, match="user's own save failed"):
            async_writer.wait()
        mgr.close()


def test_directory_errors(tmp_path):
    with pytest.raises(ValueError, match="without '/'"):
        CheckpointManager(str(tmp_path), "a/b")
    with pytest.raises(TypeError, match="must be a str"):
        CheckpointManager(3)
    with pytest.raises(TypeError, match="epoch= and step="):
        CheckpointManager(str(tmp_path)).save(net())


# ----------------------------------------------------------------- sliced checkpoints (world 1)


def sliced_net(v=0.0):
    return {"w": np.full((4, 6), v, np.float32), "n": np.array(3, np.int64)}


SLICED = {"layouts": {"w": ([1], [0, -1])}, "integrated_save": False}


def test_sliced_checkpoints_are_directories_retained_after_commit(tmp_path):
    mgr = CheckpointManager(str(tmp_path), "m", retention=policies.RetentionPolicy(2, None),
                            **SLICED)
    keys = [mgr.save(sliced_net(i), epoch=1, step=i) for i in range(1, 4)]
    assert keys[0] == os.path.join(str(tmp_path), "m-1_1")
    assert names(tmp_path) == ["m-1_2", "m-1_3"]  # retention removed the oldest directory
    assert names(tmp_path / "m-1_3") == ["mindckpt.commit", "mindckpt.index.json", "rank_0",
                                         "strategy.ckpt"]
    assert names(tmp_path / "m-1_3" / "rank_0") == ["m-1_3.ckpt"]
    assert mgr.all() == keys[1:] and mgr.latest() == keys[-1]
    got = ms.load_checkpoint(mgr.latest())
    assert float(got["w"].asnumpy()[0, 0]) == 3.0


def test_uncommitted_directory_is_neither_latest_nor_retained(tmp_path):
    from mindckpt.train import latest_checkpoint

    mgr = CheckpointManager(str(tmp_path), "m", retention=policies.RetentionPolicy(2, None),
                            **SLICED)
    old = mgr.save(sliced_net(1), epoch=1, step=1)
    new = mgr.save(sliced_net(2), epoch=1, step=2)
    os.remove(os.path.join(new, "mindckpt.commit"))  # as if another rank were still saving
    assert mgr.all() == [old] and mgr.latest() == old
    assert latest_checkpoint(str(tmp_path), "m") == old
    # the next save's retention counts committed checkpoints only, and leaves the in-progress
    # directory alone
    third = mgr.save(sliced_net(3), epoch=1, step=3)
    assert names(tmp_path) == ["m-1_1", "m-1_2", "m-1_3"]
    assert mgr.all() == [old, third]
    assert latest_checkpoint(str(tmp_path), "m") == third
    assert not os.path.exists(os.path.join(new, "mindckpt.commit"))


def test_sliced_failure_keeps_previous_checkpoint(tmp_path, monkeypatch):
    from mindckpt.parallel import save as psave

    mgr = CheckpointManager(str(tmp_path), "m", retention=policies.RetentionPolicy(1, None),
                            **SLICED)
    old = mgr.save(sliced_net(1), epoch=1, step=1)

    def broken(*a, **kw):
        raise OSError(28, "No space left on device (injected)")
    monkeypatch.setattr(psave, "write_file", broken)
    with pytest.raises(OSError, match="No space left"):
        mgr.save(sliced_net(2), epoch=1, step=2)
    assert mgr.all() == [old] and os.path.exists(os.path.join(old, "mindckpt.commit"))


def test_sliced_async_retention_after_commit(tmp_path):
    mgr = CheckpointManager(str(tmp_path), "m", retention=policies.RetentionPolicy(1, None),
                            async_save=True, **SLICED)
    first = mgr.save(sliced_net(1), epoch=1, step=1)
    second = mgr.save(sliced_net(2), epoch=1, step=2)  # waits for the first, then retains
    assert os.path.exists(os.path.join(first, "mindckpt.commit"))  # kept until `second` commits
    mgr.wait()
    assert mgr.all() == [second] and names(tmp_path) == ["m-1_2"]
    assert float(ms.load_checkpoint(second)["w"].asnumpy()[0, 0]) == 2.0
    mgr.close()


def test_sliced_keep_per_n_minutes_uses_commit_times(tmp_path):
    mgr = CheckpointManager(str(tmp_path), "m", retention=policies.RetentionPolicy(None, 1),
                            **SLICED)
    keys = [mgr.save(sliced_net(i), epoch=1, step=i) for i in range(1, 4)]
    # within one minute: the oldest of the window and the new one stay
    assert mgr.all() == [keys[0], keys[2]] and names(tmp_path) == ["m-1_1", "m-1_3"]


def test_sliced_checkpoints_in_a_url_directory():
    """Listing, retention and resume of sliced checkpoints through a store's directory
    listing (memory:// here; tests/remote runs S3), uncommitted directories left alone."""
    pytest.importorskip("fsspec")
    from mindckpt.storage.urls import resolve

    url = "memory://mgr-sliced/run"
    mgr = CheckpointManager(url, "m", retention=policies.RetentionPolicy(2, None), **SLICED)
    keys = [mgr.save(sliced_net(i), epoch=1, step=i) for i in range(1, 4)]
    store, root = resolve(url)
    assert [k.rsplit("/", 1)[-1] for k in store.list_dirs(root)] == ["m-1_2", "m-1_3"]
    assert mgr.all() == keys[1:] and mgr.latest() == keys[-1]
    assert float(ms.load_checkpoint(store.describe(mgr.latest()))["w"].asnumpy()[0, 0]) == 3.0
    store.remove(store.join(keys[-1], "mindckpt.commit"))  # as if still being saved
    assert mgr.latest() == keys[1]
    fourth = mgr.save(sliced_net(4), epoch=1, step=4)
    # two committed checkpoints (keep 2): nothing retired; the uncommitted one untouched
    assert [k.rsplit("/", 1)[-1] for k in store.list_dirs(root)] == ["m-1_2", "m-1_3", "m-1_4"]
    assert mgr.all() == [keys[1], fourth]
    fifth = mgr.save(sliced_net(5), epoch=1, step=5)
    assert [k.rsplit("/", 1)[-1] for k in store.list_dirs(root)] == ["m-1_3", "m-1_4", "m-1_5"]
    assert mgr.all() == [fourth, fifth]
