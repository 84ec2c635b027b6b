"""Fixtures for live interop tests against real MindSpore (see ms_oracle.py).

pytest runs with --import-mode=importlib, so this directory is put on sys.path here: test
modules anywhere under tests/ can then `import ms_oracle` (one shared module instance and
worker process)."""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import pytest  # noqa: E402

import ms_oracle  # noqa: E402


@pytest.fixture
def ms_oracle_mod():
    """The ms_oracle module, after skipping the test when MindSpore is unavailable."""
    ms_oracle.require_mindspore()
    return ms_oracle
