"""Fixtures of the CLI tests; the helpers are in clirun.py."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from clirun import ENTRY_POINT, GOLDEN  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _entry_point_installed():
    if not ENTRY_POINT.exists():
        pytest.fail(f"the mindckpt console script is not installed next to {sys.executable}; "
                    "run pip install -e .")


@pytest.fixture
def work(tmp_path):
    """A temporary directory with copies of a few golden files (writable)."""
    for name in ("lenet.ckpt", "lenet_crc.ckpt", "plain_scalars_append.ckpt",
                 "crc_scalars_append.ckpt", "enc_aes_gcm_k16.ckpt", "st_crc.safetensors",
                 "plain_all_dtypes.ckpt"):
        shutil.copyfile(GOLDEN / name, tmp_path / name)
    return tmp_path


