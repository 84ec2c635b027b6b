"""CheckpointLoop and TrainState with a real torch model; the demo end to end."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

import mindckpt as ms  # noqa: E402
from mindckpt.train import CheckpointConfig, ModelCheckpoint  # noqa: E402
from mindckpt.train.callback import Callback  # noqa: E402
from mindckpt.train.loop import CheckpointLoop, TrainState  # noqa: E402


def _model(seed):
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    return m, torch.optim.Adam(m.parameters(), lr=0.01, betas=(0.8, 0.95))


def _step(model, opt, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 5, generator=g)
    y = torch.randint(0, 3, (8,), generator=g)
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def test_train_state_round_trip(tmp_path):
    model, opt = _model(0)
    for i in range(3):
        _step(model, opt, i)
    state = TrainState(model, opt).checkpoint_state()
    assert "optimizer.state.0.weight.exp_avg" in state
    assert "optimizer.param_groups.0.lr" in state
    path = str(tmp_path / "s.ckpt")
    ms.save_checkpoint(state, path)
    model2, opt2 = _model(1)
    opt2.param_groups[0]["lr"] = 0.5
    param_not_load, _ = TrainState(model2, opt2).restore(ms.load_checkpoint(path))
    assert param_not_load == []
    assert opt2.param_groups[0]["lr"] == 0.01 and opt2.param_groups[0]["betas"] == (0.8, 0.95)
    for i in range(3, 5):  # both continue identically
        _step(model, opt, i)
        _step(model2, opt2, i)
    for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_loop_drives_hooks_in_mindspore_order():
    calls = []

    class Rec(Callback):
        def __getattribute__(self, name):
            if name.startswith("on_train_"):
                return lambda rc: calls.append(
                    (name, rc.original_args().cur_epoch_num, rc.original_args().cur_step_num)
                )
            return object.__getattribute__(self, name)

    model, _ = _model(0)
    with CheckpointLoop([Rec()], model, epochs=2, steps_per_epoch=2) as loop:
        for _ in loop:
            pass
    names = [c[0] for c in calls]
    assert names == (
        ["on_train_begin"]
        + (
            ["on_train_epoch_begin"]
            + ["on_train_step_begin", "on_train_step_end"] * 2
            + ["on_train_epoch_end"]
        )
        * 2
        + ["on_train_end"]
    )
    assert calls[-1][1:] == (2, 4)


def test_loop_request_stop_and_initial_epoch(tmp_path):
    class Stop(Callback):
        def step_end(self, rc):
            if rc.original_args().cur_step_num == 3:
                rc.request_stop()

    model, opt = _model(0)
    cb = ModelCheckpoint("m", str(tmp_path), CheckpointConfig(save_checkpoint_steps=2))
    seen = []
    with CheckpointLoop(
        [Stop(), cb], model, epochs=5, steps_per_epoch=2, optimizer=opt, initial_epoch=2
    ) as loop:
        for epoch, step in loop:
            seen.append((epoch, step))
    assert seen == [(3, 1), (3, 2), (4, 1)]
    assert sorted(os.listdir(tmp_path)) == ["m-3_2.ckpt", "m-4_1.ckpt"]
    d = ms.load_checkpoint(str(tmp_path / "m-4_1.ckpt"))
    assert "optimizer.state.0.weight.exp_avg_sq" not in d  # no optimizer step ran yet
    assert "0.weight" in d and "optimizer.param_groups.0.lr" in d


def test_loop_must_be_entered():
    model, _ = _model(0)
    with pytest.raises(RuntimeError, match="context manager"):
        for _ in CheckpointLoop([], model, epochs=1, steps_per_epoch=1):
            pass


def test_loop_break_calls_end_and_saves(tmp_path):
    model, _ = _model(0)
    cb = ModelCheckpoint("b", str(tmp_path), CheckpointConfig(save_checkpoint_steps=100))
    with CheckpointLoop([cb], model, epochs=3, steps_per_epoch=4) as loop:
        for epoch, step in loop:
            if (epoch, step) == (2, 2):
                break
    # `break` counts the step it leaves from as done: the end save is labelled epoch 2, step 2
    assert os.listdir(tmp_path) == ["b-2_2.ckpt"]
    assert loop.callback_seconds > 0


def test_demo_runs(capsys):
    from mindckpt import demo

    assert demo.main(["--epochs", "5", "--crash-epoch", "3", "--samples", "512"]) == 0
    out = capsys.readouterr().out
    assert "files kept:" in out and "breakpoint" in out
    assert "final weights identical to the resumed run: yes" in out
    assert "resume=True) restored mlp-3_" in out and "breakpoint, epoch 3" in out
    assert "blocked in checkpoint callbacks" in out
