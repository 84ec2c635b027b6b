"""ModelCheckpoint / CheckpointManager in a distributed run (gloo, fork, file:// rendezvous):
rank-aware naming, retention by one rank after the commit, a rank failing mid-save, async saves,
and resuming (latest_checkpoint + load) on another world size."""

from __future__ import annotations

import os

import numpy as np
import pytest

import mindckpt
from _harness import np_of, run_ranks
from _zoo import dtensor_state, full_state, make_mesh, zoo

torch = pytest.importorskip("torch")


def _train(rank, world, d, kind, config, steps, fail_at=None, fail_rank=None, mutate=False,
           plain=False):
    """Drive a ModelCheckpoint over ``steps`` steps of a DTensor state (``plain``: of ordinary
    tensors, as data parallelism has); record every deletion with how many checkpoints were
    complete at that moment."""
    from mindckpt import manager as M
    from mindckpt.errors import AsyncSaveError, DistributedCheckpointError
    from mindckpt.train import CheckpointConfig, ModelCheckpoint
    from mindckpt.train.callback import InternalCallbackParam, RunContext

    from test_failures_async import _break_disk

    sd = full_state(zoo(kind)) if plain else dtensor_state(make_mesh(world, kind), zoo(kind))
    deletions = []
    real = M._remove

    def spy(store, info):
        complete = (len(M.committed_directories(store, d))
                    + sum(len(_names(os.path.join(d, f"rank_{r}"))) for r in range(world))
                    + len([n for n in _names(d) if n.endswith((".ckpt", ".safetensors"))]))
        deletions.append((os.path.relpath(info.key, d), complete))
        real(store, info)
    M._remove = spy
    cb = ModelCheckpoint("net", d, CheckpointConfig(save_checkpoint_steps=1, **config))
    params = InternalCallbackParam(train_network=sd, batch_num=steps, epoch_num=1,
                                   cur_epoch_num=1, cur_step_num=0)
    rc = RunContext(params)
    cb.on_train_begin(rc)
    error = None
    for step in range(1, steps + 1):
        params.cur_step_num = step
        if step == fail_at:
            if cb.manager is not None:
                cb.manager.wait()  # the previous (async) save is not the one that fails
            _break_disk(fail_rank, rank, after_bytes=100)
        try:
            cb.on_train_step_end(rc)
        except (DistributedCheckpointError, AsyncSaveError) as e:
            error = {"step": step, "text": f"{e} / {e.__cause__}",
                     "failures": sorted(getattr(e, "failures", {}))}
            break
        if mutate:  # training goes on: an async save must keep the values of its step
            with torch.no_grad():
                for v in sd.values():
                    if hasattr(v, "to_local"):
                        v.to_local().add_(1)
    if error is None:
        cb.on_train_end(rc)
    return {"deletions": deletions, "latest": cb.latest_ckpt_file_name,
            "all": cb.manager.all() if cb.manager else [], "error": error}


def _names(d):
    try:
        return sorted(os.listdir(d))
    except FileNotFoundError:
        return []


def _resume(rank, world, d, kind, names_from):
    import mindckpt as ms
    from mindckpt.train import latest_checkpoint

    from test_public_api import _module_of

    found = latest_checkpoint(d, "net")
    mesh = make_mesh(world, kind)
    target = _module_of(dtensor_state(mesh, zoo(kind, names_from), zeros=True))
    if os.path.isdir(found):  # a sliced checkpoint: each rank reads its own regions
        ms.load_checkpoint(found, net=target)
    else:  # an integrated file: every rank assigns its boxes from the full tensors
        ms.load_param_into_net(target, ms.load_checkpoint(found))
    return {"found": os.path.relpath(found, d),
            "values": {n: np_of(p.full_tensor()) for n, p in target.named_parameters()}}


def _check(values, kind, plus=0):
    for name, t in full_state(zoo(kind)).items():
        if name in values:
            for _ in range(plus):  # as the training loop added it, in the tensor's dtype
                t = t + 1
            np.testing.assert_array_equal(values[name], np_of(t), name)


@pytest.mark.parametrize("config", [{"integrated_save": False, "format": "safetensors"},
                                    {"remove_redundancy": True}])
def test_sliced_retention_on_rank0_after_commit_then_resume_on_two_ranks(tmp_path, config):
    d = str(tmp_path / "ckpt")
    fmt = config.get("format", "ckpt")
    out = run_ranks(_train, 4, tmp_path, d, "2d", {"keep_checkpoint_max": 2, **config}, 4)
    # one rank deletes, and only once the new checkpoint is committed (3 complete, keep 2)
    assert out[0]["deletions"] == [("net-1_1", 3), ("net-1_2", 3)]
    assert all(o["deletions"] == [] for o in out[1:])
    assert _names(d) == ["net-1_3", "net-1_4"]
    assert _names(os.path.join(d, "net-1_4")) == [
        "mindckpt.commit", "mindckpt.index.json", "rank_0", "rank_1", "rank_2", "rank_3",
        "strategy.ckpt"]
    assert _names(os.path.join(d, "net-1_4", "rank_2")) == [f"net-1_4.{fmt}"]
    # (the other ranks do not wait for rank 0's retention: their listing may still show it)
    assert out[0]["all"] == [os.path.join(d, "net-1_3"), os.path.join(d, "net-1_4")]
    for o in out:
        assert o["latest"] == os.path.join(d, "net-1_4")
        assert o["all"][-2:] == out[0]["all"]
    # resume on another world size and mesh: the newest committed checkpoint, resharded
    back = run_ranks(_resume, 2, tmp_path, d, "1d", "2d")
    for b in back:
        assert b["found"] == "net-1_4"
        _check(b["values"], "2d")


def test_every_rank_writes_its_own_file_rank0_retains_resume_on_more_ranks(tmp_path):
    d = str(tmp_path / "ckpt")
    out = run_ranks(_train, 2, tmp_path, d, "1d", {"keep_checkpoint_max": 2}, 3)
    # a shared directory: rank r writes rank_<r>/ (MindSpore's convention); rank 0 deletes
    # the oldest checkpoint's file in every rank's directory, after both files are in place
    assert sorted(out[0]["deletions"]) == [("rank_0/net-1_1.ckpt", 6),
                                           ("rank_1/net-1_1.ckpt", 5)]
    assert out[1]["deletions"] == []
    assert _names(d) == ["rank_0", "rank_1"]
    mindckpt.save_checkpoint(full_state(zoo("1d")), str(tmp_path / "ref"))
    for r in range(2):
        assert _names(os.path.join(d, f"rank_{r}")) == ["net-1_2.ckpt", "net-1_3.ckpt"]
        assert (tmp_path / "ckpt" / f"rank_{r}" / "net-1_3.ckpt").read_bytes() == \
            (tmp_path / "ref.ckpt").read_bytes()
        assert out[r]["latest"] == os.path.join(d, f"rank_{r}", "net-1_3.ckpt")
    # 4 ranks resume from a 2-rank run: ranks 2 and 3 read rank_0's (whole) file
    back = run_ranks(_resume, 4, tmp_path, d, "2d", "1d")
    assert [b["found"] for b in back] == ["rank_0/net-1_3.ckpt", "rank_1/net-1_3.ckpt",
                                          "rank_0/net-1_3.ckpt", "rank_0/net-1_3.ckpt"]
    for b in back:
        _check(b["values"], "1d")


def test_plain_tensors_in_a_process_group_are_a_distributed_save(tmp_path):
    d = str(tmp_path / "ckpt")
    out = run_ranks(_train, 2, tmp_path, d, "1d", {"keep_checkpoint_max": 1}, 2, None, None,
                    False, True)
    assert out[0]["deletions"] == [("rank_0/net-1_1.ckpt", 4), ("rank_1/net-1_1.ckpt", 3)]
    assert out[1]["deletions"] == []
    mindckpt.save_checkpoint(full_state(zoo("1d")), str(tmp_path / "ref"))
    for r in range(2):
        assert _names(os.path.join(d, f"rank_{r}")) == ["net-1_2.ckpt"]
        assert (tmp_path / "ckpt" / f"rank_{r}" / "net-1_2.ckpt").read_bytes() == \
            (tmp_path / "ref.ckpt").read_bytes()


def test_writer_rank_writes_and_retains_alone(tmp_path):
    d = str(tmp_path / "ckpt")
    out = run_ranks(_train, 2, tmp_path, d, "1d",
                    {"keep_checkpoint_max": 1, "writer_rank": 0, "format": "safetensors"}, 3)
    assert out[0]["deletions"] == [("net-1_1.safetensors", 2), ("net-1_2.safetensors", 2)]
    assert out[1]["deletions"] == []
    assert _names(d) == ["net-1_3.safetensors"]
    mindckpt.save_checkpoint(full_state(zoo("1d")), str(tmp_path / "ref"), format="safetensors")
    assert (tmp_path / "ckpt" / "net-1_3.safetensors").read_bytes() == \
        (tmp_path / "ref.safetensors").read_bytes()


@pytest.mark.parametrize("config", [
    {"integrated_save": False},
    {"integrated_save": False, "async_save": True},
])
def test_rank_failing_mid_save_raises_everywhere_and_keeps_previous(tmp_path, config):
    d = str(tmp_path / "ckpt")
    out = run_ranks(_train, 4, tmp_path, d, "2d", {"keep_checkpoint_max": 1, **config}, 3,
                    2, 1)
    for o in out:
        err = o["error"]
        # sync: the second save raises; async: its error comes at the third save
        assert err and err["step"] == (3 if config.get("async_save") else 2)
        assert "rank 1" in err["text"] and "No space left on device" in err["text"]
        assert o["deletions"] == []
        assert o["all"] == [os.path.join(d, "net-1_1")]  # the previous one, still committed
    assert os.path.exists(os.path.join(d, "net-1_1", "mindckpt.commit"))
    assert not os.path.exists(os.path.join(d, "net-1_2", "mindckpt.commit"))
    from mindckpt.train import latest_checkpoint

    assert latest_checkpoint(d, "net") == os.path.join(d, "net-1_1")


def test_async_saves_snapshot_each_step_and_retain_after_commit(tmp_path):
    d = str(tmp_path / "ckpt")
    out = run_ranks(_train, 2, tmp_path, d, "2d",
                    {"keep_checkpoint_max": 2, "integrated_save": False, "async_save": True},
                    3, None, None, True)
    assert out[0]["deletions"] == [("net-1_1", 3)]
    assert out[1]["deletions"] == []
    assert _names(d) == ["net-1_2", "net-1_3"]
    for step in (2, 3):  # each checkpoint holds the values of its step, not later ones
        got = mindckpt.load_checkpoint(os.path.join(d, f"net-1_{step}"))
        _check({k: v.asnumpy() for k, v in got.items() if k != "step"}, "2d", plus=step - 1)


def _exception_save(rank, world, d):
    from mindckpt.train import CheckpointConfig, ModelCheckpoint
    from mindckpt.train.callback import InternalCallbackParam, RunContext

    cb = ModelCheckpoint("net", d, CheckpointConfig(exception_save=True))
    try:
        cb.on_train_begin(RunContext(InternalCallbackParam(train_network={}, batch_num=1)))
    except NotImplementedError as e:
        return str(e)
    return None


def test_exception_save_is_refused_in_a_distributed_run(tmp_path):
    out = run_ranks(_exception_save, 2, tmp_path, str(tmp_path / "c"))
    assert all(o and "exception_save=True) is not available in a distributed run" in o
               for o in out)
