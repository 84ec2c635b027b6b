import os
import sys

import pytest

from mindckpt import policies

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "interop"))  # `import ms_oracle` from any test


@pytest.fixture
def tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


class FakeClock:
    """policies' clock, set by hand (``clock.t += 60``)."""

    def __init__(self, t=2_000_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(policies, "_now", c)
    return c
