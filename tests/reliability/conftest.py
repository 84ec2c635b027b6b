"""The reliability suite (issue 13): crash consistency, fault injection, tampering, fuzzing.

Sized for CI (the whole directory in well under three minutes on two cores).  Knobs for longer
local runs (environment variables):

* ``MINDCKPT_CRASH_RUNS``: killed saves per (kind, mode) case (default 20; 208 runs in all);
* ``MINDCKPT_FUZZ_EXAMPLES``: hypothesis examples per fuzz test (default 150);
* ``MINDCKPT_TAMPER_STRIDE``: every n-th payload byte is flipped (default: about 64 per file).

Figures (runs, kept, detected per kind) are printed by each test: run with ``-s`` to see them.
"""

from __future__ import annotations

import os
import sys

from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile(
    "reliability",
    max_examples=int(os.environ.get("MINDCKPT_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large],
    derandomize=os.environ.get("MINDCKPT_FUZZ_RANDOM", "0") != "1",
    database=None,
)
