"""Helpers for the CLI tests (imported as ``clirun``): run the installed ``mindckpt`` entry point in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "files"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
ENTRY_POINT = Path(sys.executable).with_name("mindckpt")
KEY16 = "000102030405060708090a0b0c0d0e0f"


def golden(name: str) -> str:
    return str(GOLDEN / name)


def golden_key(name: str) -> str:
    return MANIFEST["files"][name]["encryption"]["key_hex"]


class Result:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"Result(rc={self.rc}, out={self.out[-800:]!r}, err={self.err[-800:]!r})"


def run_cli(*args: str, cwd: str | os.PathLike | None = None, rc: int | None = 0,
            module: bool = False, env: dict | None = None, timeout: float = 300) -> Result:
    """Run ``mindckpt ARGS`` (the console script; ``module=True``: ``python -m mindckpt``)."""
    cmd = [sys.executable, "-m", "mindckpt", *args] if module else [str(ENTRY_POINT), *args]
    full_env = {**os.environ, "MINDCKPT_FSYNC": "0", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=full_env, stdin=subprocess.DEVNULL)
    res = Result(proc)
    if rc is not None:
        assert res.rc == rc, res
    return res


def one_line_error(res: Result) -> str:
    """The error output is one line, with no traceback."""
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1, res
    assert "Traceback" not in res.err, res
    return lines[0]


def flip_bit(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    os.chmod(path, 0o600)
    path.write_bytes(bytes(data))
