"""ModelCheckpoint driven like Model.train: schedule, names, retention, safety, reuse."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mindckpt as ms
from mindckpt import manager as manager_mod
from mindckpt.errors import AsyncSaveError
from mindckpt.train import CheckpointConfig, ModelCheckpoint, RunContext
from mindckpt.train.callback import Callback, InternalCallbackParam

from .conftest import Driver, make_net


def stems(d, ext=".ckpt"):
    return sorted(f[: -len(ext)] for f in os.listdir(d) if f.endswith(ext))


def load(path):
    return ms.load_checkpoint(str(path))


def value(param):
    return np.asarray(param.asnumpy()) if hasattr(param, "asnumpy") else param


# ------------------------------------------------------------------ schedule and names
@pytest.mark.parametrize(
    "steps,expected",
    [
        (2, ["m-1_2", "m-1_4", "m-2_1", "m-2_3", "m-2_5"]),
        (3, ["m-1_3", "m-2_1", "m-2_4", "m-2_5"]),
        (7, ["m-2_2", "m-2_5"]),
        (100, ["m-2_5"]),
        (0, []),
    ],
)
def test_schedule_files(tmp_path, steps, expected):
    cfg = CheckpointConfig(save_checkpoint_steps=steps, keep_checkpoint_max=100)
    cb = ModelCheckpoint("m", str(tmp_path), cfg)
    Driver(cb).run(epochs=2)
    assert stems(tmp_path) == sorted(expected)
    for f in os.listdir(tmp_path):
        assert stat.S_IMODE(os.stat(tmp_path / f).st_mode) == 0o400


def test_schedule_initial_epoch_and_stop(tmp_path):
    cfg = CheckpointConfig(save_checkpoint_steps=2, keep_checkpoint_max=100)
    Driver(ModelCheckpoint("m", str(tmp_path / "a"), cfg)).run(epochs=3, initial_epoch=1)
    assert stems(tmp_path / "a") == ["m-2_2", "m-2_4", "m-3_1", "m-3_3", "m-3_5"]
    cfg = CheckpointConfig(save_checkpoint_steps=3, keep_checkpoint_max=100)
    Driver(ModelCheckpoint("m", str(tmp_path / "b"), cfg)).run(epochs=2, stop_at=4)
    assert stems(tmp_path / "b") == ["m-1_3", "m-1_4"]


def test_time_policy(tmp_path, clock):
    cfg = CheckpointConfig(
        save_checkpoint_steps=0, save_checkpoint_seconds=30, keep_checkpoint_max=100
    )
    cb = ModelCheckpoint("t", str(tmp_path), cfg)  # constructed at t0
    t0 = clock.t

    class Tick(Callback):  # global step k happens at t0 + 15 + 10 k: the first at 25 s
        def on_train_step_begin(self, rc):
            clock.t = t0 + 15 + 10 * rc.original_args().cur_step_num

    Driver([Tick(), cb], batch=6).run(epochs=2)
    # saves at 35 s (step 2), 75 s (step 6), 115 s (step 10), plus the end save (step 12)
    assert stems(tmp_path) == ["t-1_2", "t-1_6", "t-2_4", "t-2_6"]


def test_latest_ckpt_file_name(tmp_path):
    link = tmp_path / "link"
    real = tmp_path / "real"
    real.mkdir()
    link.symlink_to(real)
    cb = ModelCheckpoint("m", str(link), CheckpointConfig(save_checkpoint_steps=5))
    assert cb.latest_ckpt_file_name == ""
    Driver(cb).run(epochs=1)
    assert cb.latest_ckpt_file_name == os.path.join(str(real), "m-1_5.ckpt")
    with pytest.raises(AttributeError):
        cb.latest_ckpt_file_name = "x"


# ------------------------------------------------------------------ constructor
def test_constructor_errors(tmp_path):
    msg = (
        "For 'ModelCheckpoint', the argument 'prefix' for checkpoint file name is invalid, it "
        "must be callable or string that does not contain '/', but got {}."
    )
    for bad in ("a/b", 3, None):
        with pytest.raises(ValueError) as info:
            ModelCheckpoint(bad, str(tmp_path))
        assert str(info.value) == msg.format(bad)
    with pytest.raises(TypeError, match="^The path is invalid, the type should be string.$"):
        ModelCheckpoint("p", tmp_path)
    with pytest.raises(ValueError, match="^The path is invalid, it should be non-blank.$"):
        ModelCheckpoint("p", "   ")
    with pytest.raises(
        ValueError, match="^The path length is too long, it should be limited in 1024.$"
    ):
        ModelCheckpoint("p", "/" + "a" * 1100)
    f = tmp_path / "file"
    f.write_bytes(b"")
    with pytest.raises(NotADirectoryError) as info:
        ModelCheckpoint("p", str(f))
    assert str(info.value) == f"The path({f}) is a file path, it should be a directory path."
    with pytest.raises(TypeError) as info:
        ModelCheckpoint("p", str(tmp_path), {"save_checkpoint_steps": 1})
    assert str(info.value) == (
        "For 'ModelCheckpoint', the type of argument 'config' should be "
        "'CheckpointConfig', but got <class 'dict'>."
    )
    ModelCheckpoint("", str(tmp_path))
    ModelCheckpoint("a\\b", str(tmp_path))


def test_directory_created_0700(tmp_path):
    d = tmp_path / "x" / "y"
    ModelCheckpoint("p", str(d))
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700


def test_default_directory_is_cwd_at_construction(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cb = ModelCheckpoint("p", config=CheckpointConfig(save_checkpoint_steps=5))
    Driver(cb).run(epochs=1)
    assert os.listdir(tmp_path) == ["p-1_5.ckpt"]


def test_run_context():
    with pytest.raises(TypeError) as info:
        RunContext(object())
    assert str(info.value) == (
        "The argument 'original_args' of RunContext should be dict type, but got <class 'object'>."
    )
    p = InternalCallbackParam(a=1)
    p.b = 2
    assert p["b"] == 2 and p.a == 1
    with pytest.raises(KeyError):
        _ = p.missing
    rc = RunContext(p)
    assert rc.original_args() is p
    assert not rc.get_stop_requested()
    rc.request_stop()
    assert rc.get_stop_requested()


def test_plain_dict_run_context_fails_like_mindspore(tmp_path):
    cb = ModelCheckpoint("p", str(tmp_path))
    with pytest.raises(AttributeError, match="'dict' object has no attribute 'train_network'"):
        cb.on_train_step_end(RunContext({"cur_step_num": 1}))


def test_missing_field_raises_keyerror_before_writing(tmp_path):
    cb = ModelCheckpoint("p", str(tmp_path))
    p = InternalCallbackParam(train_network=make_net(), cur_step_num=1, cur_epoch_num=1)
    with pytest.raises(KeyError, match="batch_num"):
        cb.on_train_step_end(RunContext(p))
    assert os.listdir(tmp_path) == []


def test_callback_hook_mapping():
    calls = []

    class Legacy(Callback):
        def begin(self, rc):
            calls.append("begin")

        def epoch_begin(self, rc):
            calls.append("epoch_begin")

        def step_begin(self, rc):
            calls.append("step_begin")

        def step_end(self, rc):
            calls.append("step_end")

        def epoch_end(self, rc):
            calls.append("epoch_end")

        def end(self, rc):
            calls.append("end")

    cb = Legacy()
    rc = RunContext({})
    for prefix in ("on_train_", "on_eval_"):
        for hook in ("begin", "epoch_begin", "step_begin", "step_end", "epoch_end", "end"):
            getattr(cb, prefix + hook)(rc)
    assert calls == ["begin", "epoch_begin", "step_begin", "step_end", "epoch_end", "end"] * 2
    with cb as entered:
        assert entered is cb


# ------------------------------------------------------------------ prefix_N
def test_three_runs_fresh_callbacks_get_prefix_n(tmp_path):
    for _ in range(3):
        Driver(
            ModelCheckpoint("run", str(tmp_path), CheckpointConfig(save_checkpoint_steps=5))
        ).run(1)
    assert stems(tmp_path) == ["run-1_5", "run_1-1_5", "run_2-1_5"]


def test_two_callbacks_built_before_saving_share_prefix(tmp_path):
    a = ModelCheckpoint("net", str(tmp_path))
    b = ModelCheckpoint("net", str(tmp_path))
    assert a._prefix == b._prefix == "net"


# ------------------------------------------------------------------ retention
def _aged(path, age, now):
    path.write_bytes(b"old")
    os.utime(path, (now - age, now - age))


def test_retention_max3_with_aged_files(tmp_path):
    import time

    now = time.time()
    _aged(tmp_path / "p-9_9.ckpt", 100, now)
    _aged(tmp_path / "p-5_5.ckpt", 50, now)
    _aged(tmp_path / "p-0_1.ckpt", 10, now)
    cfg = CheckpointConfig(save_checkpoint_steps=1, keep_checkpoint_max=3)
    cb = ModelCheckpoint("p", str(tmp_path), cfg)
    cb._prefix = "p"  # the pre-existing files would rename us to p_10; reuse them as in [E:B6]
    history = []
    Driver(cb, batch=4).run(epochs=1, after_step=lambda s: history.append(stems(tmp_path)))
    assert history == [
        ["p-0_1", "p-1_1", "p-5_5"],
        ["p-0_1", "p-1_1", "p-1_2"],
        ["p-1_1", "p-1_2", "p-1_3"],
        ["p-1_2", "p-1_3", "p-1_4"],
    ]


def test_retention_brings_count_down_to_max(tmp_path):
    import time

    now = time.time()
    for i in range(5):
        _aged(tmp_path / f"p-0_{i}.ckpt", 100 - i, now)
    cb = ModelCheckpoint("p", str(tmp_path), CheckpointConfig(keep_checkpoint_max=2))
    cb._prefix = "p"
    Driver(cb, batch=1).run(epochs=1)
    assert stems(tmp_path) == ["p-0_4", "p-1_1"]


def test_retention_never_touches_other_files(tmp_path):
    others = [
        "p-1_1_breakpoint.ckpt",
        "p-x.ckpt",
        "p_1-1_1.ckpt",
        "p-1_1.safetensors",
        "q-1_1.ckpt",
        "notes.txt",
    ]
    for f in others:
        (tmp_path / f).write_bytes(b"")
    cb = ModelCheckpoint("p", str(tmp_path), CheckpointConfig(keep_checkpoint_max=1))
    cb._prefix = "p"
    Driver(cb).run(epochs=2)
    assert sorted(os.listdir(tmp_path)) == sorted(others + ["p-2_5.ckpt"])


def test_retention_per_n_minutes_fake_clock(tmp_path, clock):
    cfg = CheckpointConfig(
        save_checkpoint_steps=1, keep_checkpoint_max=0, keep_checkpoint_per_n_minutes=1
    )
    cb = ModelCheckpoint("p", str(tmp_path), cfg)

    def after(step):  # a save every 20 s; the file's mtime is the save time
        os.utime(cb.latest_ckpt_file_name, (clock.t, clock.t))
        clock.t += 20

    clock.t += 20
    Driver(cb, batch=9).run(epochs=1, after_step=after)
    assert stems(tmp_path) == ["p-1_1", "p-1_3", "p-1_5", "p-1_7", "p-1_9"]


def test_failing_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    cfg = CheckpointConfig(save_checkpoint_steps=1, keep_checkpoint_max=1)
    cb = ModelCheckpoint("p", str(tmp_path), cfg)
    real = manager_mod._plan_and_run
    count = {"n": 0}

    def flaky(*args, **kwargs):
        count["n"] += 1
        if count["n"] == 3:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(manager_mod, "_plan_and_run", flaky)
    with pytest.raises(OSError, match="No space left"):
        Driver(cb).run(epochs=1)
    # MindSpore would already have deleted p-1_2 before trying to write p-1_3.
    assert stems(tmp_path) == ["p-1_2"]
    assert cb.latest_ckpt_file_name.endswith("p-1_2.ckpt")
    assert len(load(tmp_path / "p-1_2.ckpt")) == 2


def test_crash_during_write_leaves_no_partial_final_file(tmp_path):
    """A write killed by RLIMIT_FSIZE: the old checkpoint survives, no partial file under a final name."""
    script = textwrap.dedent(
        f"""
        import os, resource, signal, sys
        import numpy as np
        import mindckpt as ms
        from mindckpt import nn
        from mindckpt.train import CheckpointConfig, ModelCheckpoint
        sys.path.insert(0, {os.path.dirname(os.path.dirname(__file__))!r})
        from train.conftest import Driver
        net = nn.Cell()
        net.w = ms.Parameter(ms.Tensor(np.ones(1000, np.float32)), name="w")
        cb = ModelCheckpoint("p", {str(tmp_path)!r}, CheckpointConfig(save_checkpoint_steps=1,
                                                                      keep_checkpoint_max=1))
        drv = Driver(cb, network=net, batch=3)
        def grow(step):
            if step == 1:
                net.w = ms.Parameter(ms.Tensor(np.ones(200_000, np.float32)), name="w")
                drv.params.train_network = net
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        try:
            drv.run(epochs=1, after_step=grow)
        except OSError as e:
            print("OSError", e.errno)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert "OSError 27" in proc.stdout, proc.stdout + proc.stderr
    finals = [f for f in os.listdir(tmp_path) if f.endswith(".ckpt")]
    assert finals == ["p-1_1.ckpt"], os.listdir(tmp_path)
    assert os.path.getsize(tmp_path / "p-1_1.ckpt") < 100_000
    assert value(load(tmp_path / "p-1_1.ckpt")["w"]).shape == (1000,)


# ------------------------------------------------------------------ async
@pytest.mark.parametrize("mode", [True, "thread", "process"])
def test_async_save_files_and_retention(tmp_path, mode):
    cfg = CheckpointConfig(save_checkpoint_steps=1, keep_checkpoint_max=2, async_save=mode)
    cb = ModelCheckpoint("a", str(tmp_path), cfg)
    seen = []

    def after(step):
        finals = stems(tmp_path)
        seen.append(len(finals))

    Driver(cb).run(epochs=2, after_step=after)
    assert stems(tmp_path) == ["a-2_4", "a-2_5"]
    # retention waits for completion: never fewer than min(saves completed, 2) complete files
    assert all(n >= min(i, 2) for i, n in enumerate(seen))
    assert not any(f.endswith(".tmp") for f in os.listdir(tmp_path))
    assert len(load(tmp_path / "a-2_5.ckpt")) == 2


@pytest.mark.parametrize("mode", ["thread", "process"])
@pytest.mark.parametrize("kind", ["cell", "torch"])
def test_async_snapshot_consistency(tmp_path, monkeypatch, mode, kind):
    real = manager_mod._plan_and_run

    def slow_save(save_obj, target, writer, args, kwargs):  # the write starts well after
        from mindckpt import _api  # training moved on

        job = _api.plan_save(save_obj, target, *args, **kwargs)
        inner = job.write

        def slow(recs):
            import time

            time.sleep(0.3)
            return inner(recs)

        job.write = slow
        return _api.run_save(job, writer)

    assert real is not slow_save
    monkeypatch.setattr(manager_mod, "_plan_and_run", slow_save)
    if kind == "torch":
        torch = pytest.importorskip("torch")
        net = torch.nn.Linear(4, 3)
        key = "weight"

        def mutate(step):  # in place, as an optimizer step does
            with torch.no_grad():
                net.weight.fill_(float(step))
    else:
        net = make_net()
        key = "weight"

        def mutate(step):
            net.weight.asnumpy()[...] = float(step)

    cfg = CheckpointConfig(save_checkpoint_steps=1, keep_checkpoint_max=10, async_save=mode)
    cb = ModelCheckpoint("s", str(tmp_path), cfg)
    mutate(0)
    Driver(cb, network=net, batch=3).run(epochs=1, after_step=mutate)
    # each file holds the values at its step, not the ones written right after it
    for step in (1, 2, 3):
        assert np.all(value(load(tmp_path / f"s-1_{step}.ckpt")[key]) == float(step - 1))


def test_async_error_surfaces_at_next_step_and_keeps_files(tmp_path, monkeypatch):
    cfg = CheckpointConfig(save_checkpoint_steps=1, keep_checkpoint_max=1, async_save=True)
    cb = ModelCheckpoint("e", str(tmp_path), cfg)
    real = manager_mod._plan_and_run
    n = {"k": 0}

    def failing_async(save_obj, target, writer, args, kwargs):
        n["k"] += 1
        if n["k"] == 2:

            def boom(records):
                raise OSError(28, "No space left on device")

            writer.submit([("x", np.zeros(1))], boom, target=target, mode="thread")
            return None
        return real(save_obj, target, writer, args, kwargs)

    monkeypatch.setattr(manager_mod, "_plan_and_run", failing_async)
    with pytest.raises(AsyncSaveError, match="No space left on device"):
        Driver(cb).run(epochs=1)
    assert stems(tmp_path) == ["e-1_1"]


# ------------------------------------------------------------------ append_info, networks
def test_append_info_values_and_config_not_mutated(tmp_path):
    cfg = CheckpointConfig(
        save_checkpoint_steps=2,
        keep_checkpoint_max=10,
        append_info=["epoch_num", "step_num", {"lr": 0.5, "tag": "x"}],
    )
    before = dict(cfg.append_dict)
    Driver(ModelCheckpoint("a", str(tmp_path / "one"), cfg), batch=2).run(epochs=1)
    assert cfg.append_dict == before
    d = load(tmp_path / "one" / "a-1_2.ckpt")
    assert list(d) == ["weight", "bias", "epoch_num", "step_num", "lr", "tag"]
    assert int(value(d["epoch_num"])) == 1 and int(value(d["step_num"])) == 2
    assert value(d["lr"]).dtype == np.float32 and value(d["tag"]) == "x"
    # same config again: 1, 2 again (MindSpore stores 3, 12 here)
    Driver(ModelCheckpoint("a", str(tmp_path / "two"), cfg), batch=2).run(epochs=1)
    d = load(tmp_path / "two" / "a-1_2.ckpt")
    assert (int(value(d["epoch_num"])), int(value(d["step_num"]))) == (1, 2)


def test_append_info_offsets(tmp_path):
    cfg = CheckpointConfig(append_info=["epoch_num", "step_num", {"epoch_num": 5, "step_num": 50}])
    Driver(ModelCheckpoint("a", str(tmp_path), cfg), batch=2).run(epochs=1)
    d = load(tmp_path / "a-1_2.ckpt")
    assert (int(value(d["epoch_num"])), int(value(d["step_num"]))) == (6, 52)


def test_saved_network(tmp_path):
    other = make_net(seed=1)
    cfg = CheckpointConfig(save_checkpoint_steps=5, saved_network=other)
    Driver(ModelCheckpoint("n", str(tmp_path), cfg)).run(epochs=1)
    d = load(tmp_path / "n-1_5.ckpt")
    np.testing.assert_array_equal(value(d["weight"]), value(other.weight))


def test_torch_module_as_train_network(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    Driver(
        ModelCheckpoint("t", str(tmp_path), CheckpointConfig(save_checkpoint_steps=5)),
        network=model,
    ).run(epochs=1)
    d = load(tmp_path / "t-1_5.ckpt")
    assert sorted(d) == sorted(model.state_dict())
    np.testing.assert_array_equal(value(d["0.weight"]), model[0].weight.detach().numpy())


def test_safetensors_format(tmp_path):
    cfg = CheckpointConfig(save_checkpoint_steps=2, keep_checkpoint_max=2, format="safetensors")
    Driver(ModelCheckpoint("s", str(tmp_path), cfg)).run(epochs=2)
    assert stems(tmp_path, ".safetensors") == ["s-2_3", "s-2_5"]
    d = ms.load_checkpoint(str(tmp_path / "s-2_5.safetensors"), format="safetensors")
    assert sorted(d) == ["bias", "weight"]


def test_invalid_format_fails_at_first_save_without_file(tmp_path):
    cb = ModelCheckpoint("f", str(tmp_path), CheckpointConfig(format="npz"))
    with pytest.raises(ValueError, match="the format must be 'safetensors' or 'ckpt', but got npz"):
        Driver(cb).run(epochs=1)
    assert os.listdir(tmp_path) == []


def test_remove_redundancy_stand_alone(tmp_path):
    cb = ModelCheckpoint("r", str(tmp_path), CheckpointConfig(remove_redundancy=True))
    with pytest.raises(TypeError) as info:
        Driver(cb).run(epochs=1)
    assert str(info.value) == (
        "The deduplication feature for saving checkpoint can only be used in "
        "parallel scenarios, but got 'stand_alone'."
    )


# ------------------------------------------------------------------ callable prefix / directory
def test_callable_prefix_and_directory(tmp_path):
    calls = {"prefix": 0, "dir": 0}

    def prefix(cb_params):
        calls["prefix"] += 1
        return f"net_e{cb_params.cur_epoch_num}"

    def directory(cb_params):
        calls["dir"] += 1
        return str(tmp_path / f"epoch{cb_params.cur_epoch_num}")

    cfg = CheckpointConfig(save_checkpoint_steps=2, keep_checkpoint_max=1)
    Driver(ModelCheckpoint(prefix, directory, cfg)).run(epochs=2)
    assert calls == {"prefix": 10, "dir": 10}
    assert sorted(os.listdir(tmp_path)) == ["epoch1", "epoch2"]
    assert os.listdir(tmp_path / "epoch1") == ["net_e1.ckpt"]
    assert os.listdir(tmp_path / "epoch2") == ["net_e2.ckpt"]


def test_callable_prefix_bad_return(tmp_path):
    cb = ModelCheckpoint(lambda p: "a/b", str(tmp_path))
    with pytest.raises(ValueError) as info:
        Driver(cb).run(epochs=1)
    assert str(info.value) == (
        "For 'ModelCheckpoint', the argument 'prefix' for checkpoint file name is callable, it must "
        "return a string that does not contain '/', but got a/b."
    )


# ------------------------------------------------------------------ reuse
def test_reused_callback_saves_in_second_run(tmp_path):
    cfg = CheckpointConfig(save_checkpoint_steps=2, keep_checkpoint_max=10)
    cb = ModelCheckpoint("r", str(tmp_path), cfg)
    Driver(cb).run(epochs=1)
    first = stems(tmp_path)
    assert first == ["r-1_2", "r-1_4", "r-1_5"]
    Driver(cb).run(epochs=1)  # MindSpore writes nothing here
    assert stems(tmp_path) == first + ["r_1-1_2", "r_1-1_4", "r_1-1_5"]
    assert cb.latest_ckpt_file_name.endswith("r_1-1_5.ckpt")


def test_reused_callback_time_policy_restarts(tmp_path, clock):
    cfg = CheckpointConfig(
        save_checkpoint_steps=0, save_checkpoint_seconds=30, keep_checkpoint_max=10
    )
    cb = ModelCheckpoint("r", str(tmp_path), cfg)

    class Tick(Callback):
        def on_train_step_begin(self, rc):
            clock.t += 20

    Driver([Tick(), cb], batch=4).run(epochs=1)  # 20,40,60,80: save at 40, 80 and end (80 dup)
    assert stems(tmp_path) == ["r-1_2", "r-1_4"]
    clock.t += 1000
    Driver([Tick(), cb], batch=4).run(epochs=1)  # restarts from train begin, not from t=80
    assert stems(tmp_path) == ["r-1_2", "r-1_4", "r_1-1_2", "r_1-1_4"]


# ------------------------------------------------------------------ exception_save
class Boom(Exception):
    pass


def _train_until(cb, fail_at, tmp_net=None, batch=5, epochs=3):
    from mindckpt.train.loop import CheckpointLoop

    net = tmp_net or make_net()
    with pytest.raises(Boom) as info:
        with CheckpointLoop([cb], net, epochs=epochs, steps_per_epoch=batch) as loop:
            for _ in loop:
                if loop.cb_params.cur_step_num == fail_at:
                    raise Boom("simulated crash")
    return info.value


def test_exception_save_writes_breakpoint_with_global_step(tmp_path):
    cfg = CheckpointConfig(
        save_checkpoint_steps=3,
        keep_checkpoint_max=10,
        exception_save=True,
        append_info=["epoch_num", "step_num"],
        crc_check=True,
    )
    cb = ModelCheckpoint("ex", str(tmp_path), cfg)
    err = _train_until(cb, fail_at=7)  # raised inside step 7: the weights hold steps 1..6
    assert str(err) == "simulated crash"
    assert "ex-2_1_breakpoint.ckpt" in os.listdir(tmp_path)
    d = ms.load_checkpoint(str(tmp_path / "ex-2_1_breakpoint.ckpt"), crc_check=True)
    assert int(value(d["epoch_num"])) == 2
    assert int(value(d["step_num"])) == 6  # the last done global step (MindSpore stores 2 here)
    assert stems(tmp_path) == ["ex-1_3", "ex-2_1", "ex-2_1_breakpoint"]
    # a second failure in the same directory
    cb2 = ModelCheckpoint("ex", str(tmp_path), cfg)
    _train_until(cb2, fail_at=1)
    assert "ex_1-0_0_breakpoint.ckpt" in os.listdir(tmp_path)  # no step done yet


def test_exception_before_first_step(tmp_path):
    from mindckpt.train.loop import CheckpointLoop

    cb = ModelCheckpoint("ex", str(tmp_path), CheckpointConfig(exception_save=True))
    with pytest.raises(Boom):
        with CheckpointLoop([cb], make_net(), epochs=1, steps_per_epoch=5):
            raise Boom()
    assert os.listdir(tmp_path) == ["ex-0_0_breakpoint.ckpt"]


def test_keyboard_interrupt_and_callable_prefix_keep_user_exception(tmp_path):
    from mindckpt.train.loop import CheckpointLoop

    cfg = CheckpointConfig(exception_save=True, save_checkpoint_steps=100)
    cb = ModelCheckpoint(lambda p: "fn", str(tmp_path), cfg)
    with pytest.raises(KeyboardInterrupt):
        with CheckpointLoop([cb], make_net(), epochs=2, steps_per_epoch=5) as loop:
            for epoch, step in loop:
                if epoch == 2 and step == 3:
                    raise KeyboardInterrupt
    assert os.listdir(tmp_path) == ["fn-2_2_breakpoint.ckpt"]  # step 3 did not complete


def test_exception_save_off_writes_nothing(tmp_path):
    cb = ModelCheckpoint("ex", str(tmp_path), CheckpointConfig(save_checkpoint_steps=100))
    _train_until(cb, fail_at=3)
    assert os.listdir(tmp_path) == []


def test_breakpoint_failure_does_not_replace_training_error(tmp_path, monkeypatch):
    cb = ModelCheckpoint(
        "ex", str(tmp_path), CheckpointConfig(exception_save=True, save_checkpoint_steps=100)
    )

    def broken(*a, **k):
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(manager_mod, "_plan_and_run", broken)
    err = _train_until(cb, fail_at=2)
    assert any("Permission denied" in n for n in getattr(err, "__notes__", []))


def test_async_error_during_breakpoint_save_is_attached_to_training_error(tmp_path, monkeypatch):
    cfg = CheckpointConfig(save_checkpoint_steps=1, keep_checkpoint_max=5, async_save=True,
                           exception_save=True)
    cb = ModelCheckpoint("bp", str(tmp_path), cfg)
    real = manager_mod._plan_and_run

    def failing_async(save_obj, target, writer, args, kwargs):
        if target.endswith("bp-1_2.ckpt"):

            def boom(records):
                raise OSError(28, "No space left on device")

            writer.submit([("x", np.zeros(1))], boom, target=target, mode="thread")
            return None
        return real(save_obj, target, writer, args, kwargs)

    monkeypatch.setattr(manager_mod, "_plan_and_run", failing_async)
    err = _train_until(cb, fail_at=3)
    assert str(err) == "simulated crash"
    notes = "\n".join(getattr(err, "__notes__", []))
    assert "No space left on device" in notes and "bp-1_2.ckpt" in notes
    assert "bp-1_2_breakpoint.ckpt" in notes  # the breakpoint itself was written
    assert stems(tmp_path) == ["bp-1_1", "bp-1_2_breakpoint"]


def test_user_async_save_does_not_join_callback(tmp_path):
    """A user's own save_checkpoint(async_save=True) runs on the default writer: the callback's
    saves and retention neither wait for it nor raise its error."""
    import threading

    from mindckpt import async_writer

    release = threading.Event()

    def blocked(records):
        release.wait(10)
        raise OSError(5, "the user's own save failed")

    async_writer.submit([("x", np.zeros(1))], blocked, "thread", target="user.ckpt")
    try:
        cfg = CheckpointConfig(save_checkpoint_steps=1, keep_checkpoint_max=2, async_save=True)
        Driver(ModelCheckpoint("c", str(tmp_path), cfg)).run(epochs=1)
        assert stems(tmp_path) == ["c-1_4", "c-1_5"]
        assert async_writer.thread_status()  # still blocked: nobody waited for it
    finally:
        release.set()
    with pytest.raises(AsyncSaveError, match="user's own save failed"):
        async_writer.wait()
