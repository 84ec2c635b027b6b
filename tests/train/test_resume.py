"""One-call resume: interrupted runs continue exactly (weights, optimizer, LR, RNG draws bitwise),
mid-epoch included; latest_checkpoint across prefix_N runs; retention across restarts."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

import mindckpt as ms
from mindckpt.train import CheckpointConfig, ModelCheckpoint, latest_checkpoint
from mindckpt.train.callback import Callback
from mindckpt.train.loop import CheckpointLoop

torch = pytest.importorskip("torch")

EPOCHS, STEPS, BATCH = 3, 7, 8
X = np.random.default_rng(0).standard_normal((STEPS * BATCH, 6)).astype(np.float32)
Y = np.random.default_rng(1).integers(0, 3, STEPS * BATCH)


class Interrupt(KeyboardInterrupt):
    pass


class InterruptAfterSave(Callback):
    """Raises in on_train_step_end right after ModelCheckpoint submitted an (async) save."""

    def __init__(self, at):
        self.at = at

    def on_train_step_end(self, rc):
        if rc.original_args().cur_step_num == self.at:
            raise Interrupt(f"after the save of step {self.at}")


def build(seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 3)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.7)
    return model, opt, sched


def run(directory, *, mode=False, interrupt=None, resume=True, seed=0, keep=2):
    """One process's worth of training; ``interrupt=(global_step, phase)`` stops it."""
    model, opt, sched = build(seed)
    cfg = CheckpointConfig(save_checkpoint_steps=4, keep_checkpoint_max=keep, async_save=mode,
                           exception_save=True, append_info=["epoch_num", "step_num"])
    ckpt = ModelCheckpoint("net", directory, cfg)
    at, phase = interrupt or (None, None)
    callbacks = [ckpt] + ([InterruptAfterSave(at)] if phase == "after_save" else [])
    xt, yt = torch.from_numpy(X), torch.from_numpy(Y)
    try:
        with CheckpointLoop(callbacks, model, EPOCHS, STEPS, optimizer=opt, scheduler=sched,
                            resume=resume) as loop:
            for epoch, step in loop:
                g = loop.global_step + 1
                order = np.random.default_rng(100 + epoch).permutation(STEPS * BATCH)
                idx = torch.from_numpy(order[(step - 1) * BATCH : step * BATCH])
                if at == g and phase == "before":
                    raise Interrupt("before the forward")
                noise = torch.from_numpy(np.random.standard_normal((BATCH, 6)).astype(np.float32))
                x = xt[idx] + 0.01 * random.random() * noise  # python, numpy and torch RNG
                opt.zero_grad()
                out = model(x)
                loss = torch.nn.functional.cross_entropy(out, yt[idx])
                if at == g and phase == "backward":

                    def boom(grad):
                        raise Interrupt("inside backward")

                    out.register_hook(boom)
                loss.backward()
                opt.step()
                sched.step()
    except Interrupt:
        return None
    finally:
        ckpt.close()
    return model, opt, sched, (random.random(), float(np.random.rand()), torch.rand(3))


def seed_all():
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)


def assert_same(a, b):
    (ma, oa, sa, ra), (mb, ob, sb, rb) = a, b
    for (ka, va), (kb, vb) in zip(ma.state_dict().items(), mb.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka
    sda, sdb = oa.state_dict(), ob.state_dict()
    assert sda["param_groups"] == sdb["param_groups"]
    for i, st in sda["state"].items():
        for k, v in st.items():
            assert torch.equal(v, sdb["state"][i][k]), (i, k)
    assert sa.get_last_lr() == sb.get_last_lr() and sa.state_dict() == sb.state_dict()
    assert ra[:2] == rb[:2] and torch.equal(ra[2], rb[2])


def regular(directory):
    return sorted(f for f in os.listdir(directory) if not f.endswith("_breakpoint.ckpt"))


@pytest.mark.parametrize(
    "mode,seed", [(False, 1), ("thread", 2), ("process", 3)], ids=["sync", "thread", "process"]
)
def test_three_interrupts_resume_bitwise(tmp_path, mode, seed):
    seed_all()
    ref = run(str(tmp_path / "ref"), mode=mode, resume=False)
    ref_files = sorted(os.listdir(tmp_path / "ref"))
    assert ref is not None and len(ref_files) == 2

    chooser = random.Random(seed)  # not the global RNG the training uses
    phases = ["before", "backward", "after_save"]
    chooser.shuffle(phases)
    plan = []
    for (lo, hi), phase in zip([(2, 8), (8, 15), (15, 21)], phases, strict=True):
        # "after_save": the interrupt lands while the async save of that step is in flight
        choices = [s for s in range(lo, hi) if s % 4 == 0] if phase == "after_save" else range(lo, hi)
        plan.append((chooser.choice(list(choices)), phase))
    d = str(tmp_path / "run")
    seed_all()
    for n, interrupt in enumerate(plan):
        # the first process starts like the reference; the others from a different init, so
        # that everything must come from the checkpoint
        assert run(d, mode=mode, interrupt=interrupt, seed=10 * n) is None, interrupt
        assert len(regular(d)) <= 2, (interrupt, os.listdir(d))  # across restarts
        assert len([f for f in os.listdir(d) if f.endswith("_breakpoint.ckpt")]) == 1
        assert latest_checkpoint(d, "net").breakpoint
        # the global RNG is scrambled between "processes": resume must restore it
        random.seed(n)
        np.random.seed(n)
        torch.manual_seed(n)
    final = run(d, mode=mode, seed=99)
    assert final is not None
    assert_same(ref, final)
    assert sorted(os.listdir(d)) == ref_files  # same names, keep_checkpoint_max over the job


def test_breakpoint_records_the_done_step(tmp_path):
    seed_all()
    d = str(tmp_path)
    run(d, interrupt=(10, "backward"))
    bp = latest_checkpoint(d, "net")
    assert bp.breakpoint and (bp.epoch, bp.step) == (2, 2)  # step 10 = epoch 2 step 3 not done
    params = ms.load_checkpoint(str(bp))
    assert int(params["step_num"].asnumpy()) == 9 and int(params["loop.global_step"].asnumpy()) == 9
    run(str(tmp_path / "b"), interrupt=(10, "after_save"))  # step 10 done, its update saved
    bp = latest_checkpoint(str(tmp_path / "b"), "net")
    assert (bp.epoch, bp.step) == (2, 3)
    assert int(ms.load_checkpoint(str(bp))["loop.global_step"].asnumpy()) == 10


def test_latest_checkpoint_across_runs_and_damaged_files(tmp_path):
    assert latest_checkpoint(str(tmp_path), "m") is None
    net = {"w": np.zeros(3, np.float32)}
    for i, name in enumerate(["m-1_5.ckpt", "m_1-2_5.ckpt", "m-2_2_breakpoint.ckpt", "m_2-3_1.ckpt"]):
        p = str(tmp_path / name)
        ms.save_checkpoint(net, p)
        os.utime(p, (1000 + i, 1000 + i))
    (tmp_path / "other-9_9.ckpt").write_bytes(b"")
    got = latest_checkpoint(str(tmp_path), "m")
    assert os.path.basename(got) == "m_2-3_1.ckpt" and (got.prefix, got.epoch, got.step) == ("m_2", 3, 1)
    # damage the newest: it is skipped; the next newest is a breakpoint, marked
    with open(got, "r+b") as f:
        f.truncate(5)
    bp = latest_checkpoint(str(tmp_path), "m")
    assert os.path.basename(bp) == "m-2_2_breakpoint.ckpt" and bp.breakpoint
    assert "breakpoint" in repr(bp)
    assert os.path.basename(latest_checkpoint(str(tmp_path), "m", breakpoints=False)) == "m_1-2_5.ckpt"
    assert len(ms.load_checkpoint(latest_checkpoint(str(tmp_path), "m"))) == 1  # a plain str


def test_resume_from_a_path_and_errors(tmp_path):
    seed_all()
    d = str(tmp_path / "a")
    run(d, interrupt=(12, "before"))
    path = str(latest_checkpoint(d, "net", breakpoints=False))  # net-1_... a regular file
    model, opt, sched = build(3)
    with CheckpointLoop([], model, EPOCHS, STEPS, optimizer=opt, scheduler=sched,
                        resume=path) as loop:
        assert loop.global_step == 8 and loop.resumed_from == path
        assert next(iter(loop)) == (2, 2)
    with pytest.raises(FileNotFoundError, match="is not a checkpoint file"):
        with CheckpointLoop([], model, EPOCHS, STEPS, resume=str(tmp_path / "nope.ckpt")):
            pass
    with pytest.raises(ValueError, match="first ModelCheckpoint"):
        with CheckpointLoop([], model, EPOCHS, STEPS, resume=True):
            pass


def test_fresh_run_keeps_mindspore_prefix_n(tmp_path):
    """Without resume a second run still saves as prefix_1 and retires nothing of run 1."""
    seed_all()
    d = str(tmp_path)
    run(d, resume=False)
    run(d, resume=False)
    names = sorted(os.listdir(d))
    assert [n for n in names if n.startswith("net-")] == ["net-3_6.ckpt", "net-3_7.ckpt"]
    assert [n for n in names if n.startswith("net_1-")] == ["net_1-3_6.ckpt", "net_1-3_7.ckpt"]


def test_safetensors_full_state_resume(tmp_path):
    """format='safetensors' holds no strings: the schema goes in as UTF-8 bytes."""
    def go(seed, resume, stop=None):
        model, opt, sched = build(seed)
        cfg = CheckpointConfig(save_checkpoint_steps=STEPS, keep_checkpoint_max=2,
                               format="safetensors")
        ckpt = ModelCheckpoint("st", str(tmp_path), cfg)
        with CheckpointLoop([ckpt], model, 2, STEPS, optimizer=opt, scheduler=sched,
                            resume=resume) as loop:
            for epoch, _step in loop:
                if epoch == stop:
                    loop.run_context.request_stop()
                    continue
                opt.zero_grad()
                model(torch.from_numpy(X[:BATCH])).sum().backward()
                opt.step()
                sched.step()
        return model, opt

    seed_all()
    ref, _ = go(0, False)
    for f in os.listdir(tmp_path):
        os.remove(tmp_path / f)
    seed_all()
    go(0, False, stop=2)  # epoch 1 saved (st-1_7), stops at the first step of epoch 2
    os.remove(tmp_path / "st-2_1.safetensors")  # the end save of the stopped run
    model, opt = go(5, True)
    for a, b in zip(ref.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_resume_plain_network_from_step_num(tmp_path):
    """Without a TrainState: the weights come back and the position from step_num."""
    from .conftest import make_net

    cfg = CheckpointConfig(save_checkpoint_steps=3, keep_checkpoint_max=5,
                           append_info=["step_num"])
    net = make_net(1)
    with CheckpointLoop([ModelCheckpoint("p", str(tmp_path), cfg)], net, 2, 5) as loop:
        for _epoch, _step in loop:
            net.weight.asnumpy()[...] += 1.0
            if loop.global_step + 1 == 7:
                break
    assert "p-2_2.ckpt" in os.listdir(tmp_path)  # the break saves step 7 (epoch 2, step 2)
    net2 = make_net(2)
    seen = []
    with CheckpointLoop([ModelCheckpoint("p", str(tmp_path), cfg)], net2, 2, 5,
                        resume=True) as loop:
        assert loop.global_step == 7
        np.testing.assert_array_equal(net2.weight.asnumpy(), net.weight.asnumpy())
        for epoch, step in loop:
            seen.append((epoch, step))
    assert seen == [(2, 3), (2, 4), (2, 5)]
    assert int(ms.load_checkpoint(str(tmp_path / "p-2_5.ckpt"))["step_num"].asnumpy()) == 10


def test_latest_checkpoint_per_rank_files_never_stale(tmp_path, monkeypatch):
    """A distributed run's rank_<r>/ files: this rank's copy of the newest checkpoint, else rank
    0's; a stale file of an earlier, larger run never hides the checkpoint rank 0 resumes
    from."""
    import mindckpt.parallel._dist as D

    def put(rel, t):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        ms.save_checkpoint({"w": np.ones(2, np.float32)}, str(tmp_path / rel))
        os.utime(tmp_path / rel, (t, t))
    put("rank_0/net-1_1.ckpt", 1_000)
    put("rank_2/net-1_1.ckpt", 1_000)  # rank 2 existed in the first run only
    put("rank_0/net-1_3.ckpt", 3_000)
    monkeypatch.setattr(D, "rank_of", lambda group=None: 2)
    assert latest_checkpoint(str(tmp_path), "net") == str(tmp_path / "rank_0" / "net-1_3.ckpt")
    put("rank_2/net-1_3.ckpt", 3_001)
    assert latest_checkpoint(str(tmp_path), "net") == str(tmp_path / "rank_2" / "net-1_3.ckpt")
    monkeypatch.setattr(D, "rank_of", lambda group=None: 0)
    assert latest_checkpoint(str(tmp_path), "net") == str(tmp_path / "rank_0" / "net-1_3.ckpt")
