"""``mindckpt demo``, ``--version``, ``--help`` and ``python -m mindckpt``."""

from __future__ import annotations

import re

import pytest
from clirun import run_cli

import mindckpt

COMMANDS = ("inspect", "verify", "diff", "convert", "rekey", "ls", "demo")


def test_version_both_entry_points():
    assert run_cli("--version").out.strip() == f"mindckpt {mindckpt.__version__}"
    assert run_cli("--version", module=True).out.strip() == f"mindckpt {mindckpt.__version__}"


def test_help_is_plain_text_and_names_every_command():
    top = run_cli("--help").out
    for cmd in COMMANDS:
        assert re.search(rf"^\s+{cmd}\s", top, re.M), (cmd, top)
    assert "hex" in top and "exit status" in top
    texts = [top] + [run_cli(cmd, "--help").out for cmd in ("inspect", "convert", "rekey")]
    for text in texts:
        assert "``" not in text and ":func:" not in text and ":class:" not in text, text
    assert "hex digits" in texts[1] and "@FILE" in texts[1]


def test_usage_errors_exit_2():
    res = run_cli(rc=2)
    assert "COMMAND" in res.err
    run_cli("nosuchcommand", rc=2)
    run_cli("inspect", rc=2)  # FILE missing
    run_cli("verify", "x.ckpt", "--mode", "AES-XTS", rc=2)


@pytest.mark.slow
def test_demo_runs(tmp_path):
    res = run_cli("demo", "--dir", str(tmp_path), timeout=900)
    assert "{'conv2.weight': Parameter (name=conv2.weight, shape=(16, 6, 5, 5)" in res.out
    assert "reloaded LeNet5 equals the saved one: True" in res.out
    assert "final weights identical to the resumed run: yes" in res.out
