"""Trigger schedule, file naming, prefix_N and retention, driven with a fake clock."""

from __future__ import annotations

import os

import pytest

from mindckpt.train import policies


def schedule(steps, seconds=None, epochs=2, batch=5, stop_at=None, initial_epoch=0):
    """File stems MindSpore's ModelCheckpoint would write (prefix m) for a run."""
    trig = policies.TriggerPolicy(steps, seconds)
    out = []
    cur = 0
    for epoch in range(initial_epoch + 1, epochs + 1):
        for _ in range(batch):
            cur += 1
            if trig.should_save(cur):
                out.append(f"m-{epoch}_{policies.step_in_epoch(cur, batch)}")
            if stop_at == cur:
                break
        if stop_at == cur:
            break
    if trig.should_save(cur, force=True):
        out.append(f"m-{epoch}_{policies.step_in_epoch(cur, batch)}")
    return out


@pytest.mark.parametrize(
    "steps,kw,expected",
    [
        (2, {}, ["m-1_2", "m-1_4", "m-2_1", "m-2_3", "m-2_5"]),
        (3, {}, ["m-1_3", "m-2_1", "m-2_4", "m-2_5"]),
        (7, {}, ["m-2_2", "m-2_5"]),
        (100, {}, ["m-2_5"]),
        (0, {}, []),
        (None, {}, []),
        (2, {"initial_epoch": 1, "epochs": 3}, ["m-2_2", "m-2_4", "m-3_1", "m-3_3", "m-3_5"]),
        (3, {"stop_at": 4}, ["m-1_3", "m-1_4"]),
    ],
)
def test_step_schedule_matches_mindspore(steps, kw, expected):
    assert schedule(steps, **kw) == expected


def test_time_policy_fake_clock(clock):
    trig = policies.TriggerPolicy(None, 30)  # constructed at t0
    t0 = clock.t
    saves = []
    for i in range(12):  # first step 25 s after construction, then one every 10 s
        clock.t = t0 + 25 + 10 * i
        if trig.should_save(i + 1):
            saves.append(clock.t - t0)
    assert saves == [35, 75, 115]
    # step 12 (t=135 s) was not saved (135-115 < 30), so the end save happens.
    assert trig.should_save(12, force=True) is True


def test_time_policy_forced_end_save(clock):
    trig = policies.TriggerPolicy(None, 30)
    clock.t += 5
    assert trig.should_save(1) is False
    assert trig.should_save(1, force=True) is True
    assert trig.should_save(1, force=True) is False  # no duplicate for the same step


def test_time_policy_strictly_greater(clock):
    trig = policies.TriggerPolicy(None, 30)
    clock.t += 30
    assert trig.should_save(1) is False
    clock.t += 0.001
    assert trig.should_save(2) is True


def test_steps_win_over_seconds(clock):
    trig = policies.TriggerPolicy(5, 1)
    clock.t += 100
    assert [trig.should_save(s) for s in range(1, 7)] == [False] * 4 + [True, False]


def test_file_names():
    assert policies.checkpoint_file_name("LeNet", 3, 7, "ckpt") == "LeNet-3_7.ckpt"
    assert policies.checkpoint_file_name("p", 1, 1, "safetensors") == "p-1_1.safetensors"
    assert [policies.step_in_epoch(s, 5) for s in (1, 5, 6, 10, 11)] == [1, 5, 1, 5, 1]


NO_RENAME = [
    "LeNet-graph.meta",
    "LeNet.ckpt",
    "LeNet-1_1.tmp",
    "LeNet-1_1.CKPT",
    "LeNet-1_1.ckpt.bak",
    "LeNet-1_1_breakpoint.ckpt",
    "LeNetX-1_1.ckpt",
    "LeNet1-1_1.ckpt",
    "LeNet_a-1_1.ckpt",
    "LeNet_2.ckpt",
    "LeNet_2_3-1_1.ckpt",
    "LeNet_-1.ckpt",
    "xLeNet-1_1.ckpt",
]


@pytest.mark.parametrize(
    "files,expected",
    [([], "LeNet")]
    + [([f], "LeNet") for f in NO_RENAME]
    + [
        (NO_RENAME, "LeNet"),
        (["LeNet-1_1.ckpt"], "LeNet_1"),
        (["LeNet-1_1.safetensors"], "LeNet_1"),
        (["LeNet-anything.ckpt"], "LeNet_1"),
        (["LeNet_1-1_1.ckpt"], "LeNet_2"),
        (["LeNet_1-1_1.ckpt", "LeNet-1_1.ckpt"], "LeNet_2"),
        (["LeNet.1-1.ckpt"], "LeNet_2"),
        (["LeNet_5-1_1.ckpt"], "LeNet_6"),
        (["LeNet_10-3_3.ckpt", "LeNet-1_1.ckpt"], "LeNet_11"),
    ],
)
def test_prefix_dedup_table(tmp_path, files, expected):
    for f in files:
        (tmp_path / f).write_bytes(b"")
    assert policies.dedup_prefix(str(tmp_path), "LeNet") == expected


def test_prefix_equal_to_file_name_does_not_crash(tmp_path):
    # MindSpore raises IndexError here (prefix "LeNet.ckpt", file "LeNet.ckpt").
    (tmp_path / "LeNet.ckpt").write_bytes(b"")
    assert policies.dedup_prefix(str(tmp_path), "LeNet.ckpt") == "LeNet.ckpt"


def test_prefix_dedup_exception_mode(tmp_path):
    (tmp_path / "ex-1_1.ckpt").write_bytes(b"")
    assert policies.dedup_prefix(str(tmp_path), "ex", exception=True) == "ex"
    (tmp_path / "ex-2_2_breakpoint.ckpt").write_bytes(b"")
    assert policies.dedup_prefix(str(tmp_path), "ex", exception=True) == "ex_1"
    assert policies.dedup_prefix(str(tmp_path), "ex") == "ex_1"  # from ex-1_1.ckpt only


def test_managed_files(tmp_path):
    for f in [
        "p-1_1.ckpt",
        "p-10_3.ckpt",
        "p-1_1_breakpoint.ckpt",
        "p-x.ckpt",
        "p_1-1_1.ckpt",
        "p-1_1.safetensors",
        "p-1_1.tmp",
        "q-1_1.ckpt",
    ]:
        (tmp_path / f).write_bytes(b"")
    names = sorted(os.path.basename(p) for p in policies.managed_files(str(tmp_path), "p", "ckpt"))
    assert names == ["p-10_3.ckpt", "p-1_1.ckpt"]
    names = [os.path.basename(p) for p in policies.managed_files(str(tmp_path), "p", "safetensors")]
    assert names == ["p-1_1.safetensors"]


def _touch(path, mtime):
    path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))


def test_retention_max_brings_count_down_and_spares_new(tmp_path, clock):
    # 5 managed files already present, max=2: MindSpore stays at 5 forever; we go down to 2.
    for i in range(5):
        _touch(tmp_path / f"p-{i}_1.ckpt", clock.t - 100 + i)
    new = tmp_path / "p-9_9.ckpt"
    _touch(new, clock.t - 1000)  # even when the new file looks oldest, it is kept
    (tmp_path / "p-1_1_breakpoint.ckpt").write_bytes(b"")
    (tmp_path / "other.ckpt").write_bytes(b"")
    pol = policies.RetentionPolicy(2, None)
    deleted = pol.apply(str(tmp_path), "p", "ckpt", str(new), clock.t, clock.t - 1)
    assert sorted(os.path.basename(d) for d in deleted) == [f"p-{i}_1.ckpt" for i in range(4)]
    assert sorted(os.listdir(tmp_path)) == [
        "other.ckpt",
        "p-1_1_breakpoint.ckpt",
        "p-4_1.ckpt",
        "p-9_9.ckpt",
    ]


def test_retention_does_nothing_if_new_file_missing(tmp_path, clock):
    for i in range(5):
        _touch(tmp_path / f"p-{i}_1.ckpt", clock.t - 100 + i)
    pol = policies.RetentionPolicy(1, None)
    assert pol.apply(str(tmp_path), "p", "ckpt", str(tmp_path / "p-9_9.ckpt"), clock.t, 0) == []
    assert len(os.listdir(tmp_path)) == 5


def test_retention_per_n_minutes_window(tmp_path, clock):
    """per_n_minutes=1 with a save every 20 s keeps steps 1, 3, 5, ... plus the latest."""
    pol = policies.RetentionPolicy(None, 1)
    pol.reset(clock.t)
    kept_history = []
    for step in range(1, 10):
        clock.t += 20
        prev = pol.note_save(clock.t)
        f = tmp_path / f"p-1_{step}.ckpt"
        _touch(f, clock.t)
        pol.apply(str(tmp_path), "p", "ckpt", str(f), clock.t, prev)
        kept_history.append(
            sorted(int(n.split("_")[1].split(".")[0]) for n in os.listdir(tmp_path))
        )
    assert kept_history[-1] == [1, 3, 5, 7, 9]
    assert kept_history[1] == [1, 2]
    assert kept_history[2] == [1, 3]


def test_retention_per_n_minutes_nothing_deleted_when_saves_far_apart(tmp_path, clock):
    pol = policies.RetentionPolicy(None, 1)
    pol.reset(clock.t)
    for step in range(1, 5):
        clock.t += 70
        prev = pol.note_save(clock.t)
        f = tmp_path / f"p-1_{step}.ckpt"
        _touch(f, clock.t)
        pol.apply(str(tmp_path), "p", "ckpt", str(f), clock.t, prev)
    assert len(os.listdir(tmp_path)) == 4
