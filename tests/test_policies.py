"""mindckpt.policies: trigger schedule, file naming, prefix_N and retention (pure: listings in,
decisions out), driven with a fake clock."""

from __future__ import annotations

import pytest

from mindckpt import policies
from mindckpt.storage.base import FileInfo


def info(name, mtime=0.0, directory="/d"):
    return FileInfo(f"{directory}/{name}", 1, mtime)


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
def test_prefix_dedup_table(files, expected):
    assert policies.dedup_prefix(files, "LeNet") == expected


def test_prefix_equal_to_file_name_does_not_crash():
    # MindSpore raises IndexError here (prefix "LeNet.ckpt", file "LeNet.ckpt").
    assert policies.dedup_prefix(["LeNet.ckpt"], "LeNet.ckpt") == "LeNet.ckpt"


def test_prefix_dedup_exception_mode():
    names = ["ex-1_1.ckpt"]
    assert policies.dedup_prefix(names, "ex", exception=True) == "ex"
    names.append("ex-2_2_breakpoint.ckpt")
    assert policies.dedup_prefix(names, "ex", exception=True) == "ex_1"
    assert policies.dedup_prefix(names, "ex") == "ex_1"  # from ex-1_1.ckpt only


def test_managed():
    listing = [
        info(f)
        for f in [
            "p-1_1.ckpt",
            "p-10_3.ckpt",
            "p-1_1_breakpoint.ckpt",
            "p-x.ckpt",
            "p_1-1_1.ckpt",
            "p-1_1.safetensors",
            "p-1_1.tmp",
            "q-1_1.ckpt",
        ]
    ]
    assert sorted(f.name for f in policies.managed(listing, "p", "ckpt")) == [
        "p-10_3.ckpt",
        "p-1_1.ckpt",
    ]
    assert [f.name for f in policies.managed(listing, "p", "safetensors")] == ["p-1_1.safetensors"]
    assert sorted(f.name for f in policies.managed(listing, ["p", "p_1"], "ckpt")) == [
        "p-10_3.ckpt",
        "p-1_1.ckpt",
        "p_1-1_1.ckpt",
    ]


def test_parse_name_and_newest():
    assert policies.parse_name("m_2-3_7_breakpoint.ckpt", "m") == policies.CheckpointName(
        "m_2", 2, 3, 7, True, "ckpt"
    )
    assert policies.parse_name("m-1_5.safetensors", "m").prefix == "m"
    for bad in ["m-1_5_breakpoint.safetensors", "m-x.ckpt", "mm-1_1.ckpt", "m-1_1.tmp", "m_a-1_1.ckpt"]:
        assert policies.parse_name(bad, "m") is None
    listing = [
        info("m-2_5.ckpt", 10),
        info("m-2_2_breakpoint.ckpt", 20),
        info("m_1-3_1.ckpt", 30),
        info("m_1-2_5.ckpt", 30),  # same mtime: the position decides
        info("other-9_9.ckpt", 99),
    ]
    assert [f.name for f, _ in policies.newest(listing, "m")] == [
        "m-2_5.ckpt",
        "m-2_2_breakpoint.ckpt",
        "m_1-2_5.ckpt",
        "m_1-3_1.ckpt",
    ]
    assert policies.run_prefixes(listing, "m") == ["m", "m_1"]


def test_trigger_resume_at_keeps_the_schedule():
    trig = policies.TriggerPolicy(4, None)
    trig.resume_at(10)  # saves of the uninterrupted run: 4, 8, 12, ...
    assert [s for s in range(11, 20) if trig.should_save(s)] == [12, 16]


def test_retention_max_brings_count_down_and_spares_new(clock):
    # 5 managed files already present, max=2: MindSpore stays at 5 forever; we go down to 2.
    files = [info(f"p-{i}_1.ckpt", clock.t - 100 + i) for i in range(5)]
    new = info("p-9_9.ckpt", clock.t - 1000)  # even when the new file looks oldest, it is kept
    pol = policies.RetentionPolicy(2, None)
    doomed = pol.select(files + [new], new.key, clock.t, clock.t - 1)
    assert sorted(f.name for f in doomed) == [f"p-{i}_1.ckpt" for i in range(4)]


def test_retention_ties_broken_by_name(clock):
    files = [info(n, 5.0) for n in ("p-1_3.ckpt", "p-1_1.ckpt", "p-1_2.ckpt")]
    pol = policies.RetentionPolicy(1, None)
    assert [f.name for f in pol.select(files, files[0].key, clock.t, 0)] == [
        "p-1_1.ckpt",
        "p-1_2.ckpt",
    ]


def _run_window(clock, interval, steps=9):
    pol = policies.RetentionPolicy(None, 1)
    pol.reset(clock.t)
    present: list = []
    history = []
    for step in range(1, steps + 1):
        clock.t += interval
        prev = pol.note_save(clock.t)
        f = info(f"p-1_{step}.ckpt", clock.t)
        present.append(f)
        for d in pol.select(present, f.key, clock.t, prev):
            present.remove(d)
        history.append(sorted(int(x.name.split("_")[1].split(".")[0]) for x in present))
    return history


def test_retention_per_n_minutes_window(clock):
    """per_n_minutes=1 with a save every 20 s keeps steps 1, 3, 5, ... plus the latest."""
    history = _run_window(clock, 20)
    assert history[-1] == [1, 3, 5, 7, 9]
    assert history[1] == [1, 2]
    assert history[2] == [1, 3]


def test_retention_per_n_minutes_nothing_deleted_when_saves_far_apart(clock):
    assert _run_window(clock, 70, steps=4)[-1] == [1, 2, 3, 4]
