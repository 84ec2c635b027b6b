"""A rank failing mid-save (every rank raises, naming it; nothing committed; the previous
checkpoint survives), and async saves (snapshot at call time, commit when all ranks finish)."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

import mindckpt
from _harness import np_of, run_ranks
from _zoo import dtensor_state, full_state, make_mesh, zoo

torch = pytest.importorskip("torch")


def _break_disk(on_rank, rank, after_bytes=0):
    """Make this rank's local writes fail with ENOSPC after ``after_bytes``."""
    if rank != on_rank:
        return
    from mindckpt.storage import LOCAL

    real = LOCAL.open_write

    def open_write(key, **kw):
        w = real(key, **kw)
        inner = w.write
        seen = [0]

        def write(data):
            seen[0] += memoryview(data).nbytes
            if seen[0] > after_bytes:
                raise OSError(errno.ENOSPC, "No space left on device (injected)")
            inner(data)
        w.write = write
        return w
    LOCAL.open_write = open_write


def _save_then_fail(rank, world, good, bad, kwargs, fail_rank):
    from mindckpt.parallel._dist import DistributedCheckpointError
    from mindckpt.parallel.save import save_distributed

    mesh = make_mesh(world, "2d")
    sd = dtensor_state(mesh, zoo("2d"))
    save_distributed(sd, good(rank) if callable(good) else good, **kwargs)
    _break_disk(fail_rank, rank, after_bytes=100)
    try:
        save_distributed(sd, bad(rank) if callable(bad) else bad, **kwargs)
    except DistributedCheckpointError as e:
        return {"error": str(e), "failures": sorted(e.failures)}
    return {"error": None}


def test_sliced_rank_failure_commits_nothing(tmp_path):
    good, bad = tmp_path / "step1", tmp_path / "step2"
    out = run_ranks(_save_then_fail, 4, tmp_path, str(good), str(bad),
                    {"integrated_save": False, "format": "safetensors"}, 1)
    for o in out:
        assert o["failures"] == [1]
        assert "rank 1" in o["error"] and "No space left on device" in o["error"]
    assert (good / "mindckpt.commit").exists()
    assert not (bad / "mindckpt.commit").exists()
    from mindckpt.errors import CheckpointNotFoundError
    from mindckpt.parallel.layout import TensorLayout
    from mindckpt.parallel.load import read_shards

    with pytest.raises(CheckpointNotFoundError, match="not a committed checkpoint"):
        read_shards(str(bad), {})
    # the previous checkpoint is intact and loads
    lay = {n: TensorLayout.replicated(s) for n, s, _d, _p in zoo("2d")}
    got = read_shards(str(good), lay)
    for name, t in full_state(zoo("2d")).items():
        np.testing.assert_array_equal(got[name], np_of(t))


def test_integrated_rank_failure_publishes_no_file(tmp_path):
    path = lambda r: str(tmp_path / f"rank_{r}" / "net")  # noqa: E731
    out = run_ranks(_save_then_fail, 4, tmp_path, path, path, {}, 2)
    for o in out:
        assert o["failures"] == [2] and "rank 2" in o["error"]
    # every rank's file is still the first save's (a failed save replaces nothing)
    ref = tmp_path / "ref"
    mindckpt.save_checkpoint(full_state(zoo("2d")), str(ref))
    for r in range(4):
        assert (tmp_path / f"rank_{r}" / "net.ckpt").read_bytes() == \
            (tmp_path / "ref.ckpt").read_bytes()
        assert [n for n in os.listdir(tmp_path / f"rank_{r}") if n != "net.ckpt"] == []


def test_commit_failure_on_rank0_raises_everywhere(tmp_path):
    def fn(rank, world, d):
        from mindckpt.parallel import save as S
        from mindckpt.parallel._dist import DistributedCheckpointError

        mesh = make_mesh(world, "1d")
        sd = dtensor_state(mesh, zoo("1d"))
        if rank == 0:
            def broken(layouts):
                raise PermissionError("strategy directory is read-only (injected)")
            S._strategy_bytes = broken
        try:
            S.save_distributed(sd, d, integrated_save=False)
        except DistributedCheckpointError as e:
            return str(e)
        return None
    out = run_ranks(fn, 2, tmp_path, str(tmp_path / "c"))
    assert all(o and "rank 0" in o and "read-only" in o for o in out)
    assert not (tmp_path / "c" / "mindckpt.commit").exists()


def test_committed_directory_is_not_overwritten(tmp_path):
    out = run_ranks(_save_then_fail, 2, tmp_path, str(tmp_path / "d"), str(tmp_path / "d"),
                    {"integrated_save": False}, -1)
    for o in out:
        assert "already holds a committed checkpoint" in o["error"]


# ----------------------------------------------------------------- async


def _async_child(rank, world, d, fail_rank, kind):
    import mindckpt.async_writer as aw
    from mindckpt.errors import AsyncSaveError
    from mindckpt.parallel.save import save_distributed

    mesh = make_mesh(world, kind)
    sd = dtensor_state(mesh, zoo(kind))
    _break_disk(fail_rank, rank)
    r = save_distributed(sd, d, integrated_save=False, async_save=True)
    assert r is None
    with torch.no_grad():  # training goes on: the checkpoint must keep the old values
        for v in sd.values():
            if hasattr(v, "to_local"):
                v.to_local().add_(1000)
    try:
        aw.wait()
    except AsyncSaveError as e:
        return {"error": f"{e} / {e.__cause__}"}
    return {"error": None}


@pytest.mark.parametrize("kind", ["1d", "2d"])
def test_async_sliced_save_snapshots_then_commits(tmp_path, kind):
    d = tmp_path / "async"
    out = run_ranks(_async_child, 4, tmp_path, str(d), -1, kind)
    assert all(o["error"] is None for o in out)
    assert (d / "mindckpt.commit").exists()
    from mindckpt.parallel.layout import TensorLayout
    from mindckpt.parallel.load import read_shards

    lay = {n: TensorLayout.replicated(s) for n, s, _d, _p in zoo(kind)}
    got = read_shards(str(d), lay)
    for name, t in full_state(zoo(kind)).items():
        np.testing.assert_array_equal(got[name], np_of(t))


def test_async_failure_raises_on_every_rank_at_wait(tmp_path):
    d = tmp_path / "async_bad"
    out = run_ranks(_async_child, 2, tmp_path, str(d), 1, "1d")
    for o in out:
        assert o["error"] and "rank 1" in o["error"] and "No space" in o["error"]
    assert not (d / "mindckpt.commit").exists()


def _async_integrated(rank, world, path):
    import mindckpt.async_writer as aw
    from mindckpt.parallel.save import save_distributed

    mesh = make_mesh(world, "2d")
    sd = dtensor_state(mesh, zoo("2d"))
    save_distributed(sd, path, writer_rank=0, async_save=True, format="safetensors")
    with torch.no_grad():
        for v in sd.values():
            if hasattr(v, "to_local"):
                v.to_local().mul_(0)
    aw.wait()
    return True


def test_async_integrated_one_writer(tmp_path):
    run_ranks(_async_integrated, 4, tmp_path, str(tmp_path / "a.safetensors"))
    mindckpt.save_checkpoint(full_state(zoo("2d")), str(tmp_path / "ref"), format="safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == \
        (tmp_path / "ref.safetensors").read_bytes()


def _dies_mid_save(rank, world, good, bad):
    from mindckpt.parallel import save as S

    mesh = make_mesh(world, "1d")
    sd = dtensor_state(mesh, zoo("1d"))
    S.save_distributed(sd, good, integrated_save=False)
    if rank == 1:  # the process dies after writing its part, before reporting it
        real = S.write_file

        def write_then_die(*a, **kw):
            real(*a, **kw)
            os._exit(3)
        S.write_file = write_then_die
    try:
        S.save_distributed(sd, bad, integrated_save=False)
    except Exception as e:  # noqa: BLE001 - gloo reports the lost peer
        return f"{type(e).__name__}: {e}"
    return None


@pytest.mark.slow
def test_rank_process_dies_mid_save(tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    out = run_ranks(_dies_mid_save, 3, tmp_path, str(good), str(bad), dead=(1,), timeout=120)
    assert out[1] is None and out[0] and out[2]  # the survivors raised, none hung
    assert (bad / "rank_1").exists() and not (bad / "mindckpt.commit").exists()
    assert (good / "mindckpt.commit").exists()
