"""Coverage-guided fuzzing of the parsers and the decryptor (optional, local).

    pip install atheris
    python tests/reliability/atheris_fuzz.py ckpt|safetensors|gcm [-atheris_runs=N] [corpus/]

Any exception other than mindckpt's documented errors is a finding: atheris saves the input;
add it to test_hostile.py as a regression case.
"""

from __future__ import annotations

import os
import sys
import warnings

import atheris

with atheris.instrument_imports():
    from mindckpt.errors import CheckpointError
    from mindckpt.pipeline import CheckpointReader
    from mindckpt.storage.memory import BytesSource

KEY = bytes(range(16))
TARGET = sys.argv.pop(1) if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "ckpt"


def one(data: bytes) -> None:
    kw: dict = {"format": "safetensors"} if TARGET == "safetensors" else {}
    if TARGET == "gcm":
        kw = {"dec_key": KEY, "dec_mode": "AES-GCM"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with CheckpointReader(BytesSource(data, "fuzz"), "fuzz", **kw) as r:
                r.index  # noqa: B018
                r.read()
    except CheckpointError:
        pass


if __name__ == "__main__":
    os.environ.setdefault("MINDCKPT_FSYNC", "0")
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()
