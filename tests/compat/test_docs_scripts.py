"""MindSpore documentation-style scripts (tests/compat/scripts/) run under mindckpt with only
their import lines changed, and print exactly what real MindSpore 2.10 printed
(golden/mindspore_compat.json, ``scripts``; regenerate with golden/make_golden.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mindckpt

HERE = Path(__file__).resolve().parent
SCRIPTS = sorted((HERE / "scripts").glob("*.py"))
GOLDEN = json.loads((HERE / "golden" / "mindspore_compat.json").read_text())["scripts"]

_IMPORT = re.compile(r"^(\s*)(import|from) mindspore(\.[\w.]+)?( as \w+)?(\s|$)")


def port(source: str) -> str:
    """``import mindspore`` -> ``import mindckpt as mindspore``; ``import mindspore.x as y`` ->
    ``import mindckpt.x as y``; ``from mindspore...`` -> ``from mindckpt...``. Nothing else."""
    out = []
    for line in source.splitlines(keepends=True):
        m = _IMPORT.match(line)
        if m is None:
            out.append(line)
        elif m.group(2) == "import" and not m.group(3) and not m.group(4):
            out.append(line.replace("import mindspore", "import mindckpt as mindspore", 1))
        else:
            out.append(line.replace("mindspore", "mindckpt", 1))
    return "".join(out)


def test_port_changes_only_import_lines():
    src = ("import mindspore\nimport mindspore as ms\nimport mindspore.common.dtype as mstype\n"
           "from mindspore import nn\nx = mindspore.Tensor(1)  # mindspore\n")
    got = port(src).splitlines()
    assert got == ["import mindckpt as mindspore", "import mindckpt as ms",
                   "import mindckpt.common.dtype as mstype", "from mindckpt import nn",
                   "x = mindspore.Tensor(1)  # mindspore"]


# Names the scripts use from the top-level package that src/mindckpt/__init__.py does not
# export yet (the package lead adds them); until then that script is skipped, saying which.
_TOP_LEVEL = {"toplevel_names.py": [
    "set_context", "get_context", "GRAPH_MODE", "PYNATIVE_MODE", "context", "ParameterTuple",
    "set_seed", "get_seed", "half", "single", "long", "float_", "double", "dtype", "from_numpy",
    "is_tensor", "pytype_to_dtype", "dtype_to_nptype", "get_current_device"]}


def test_every_script_has_golden_output():
    assert sorted(GOLDEN) == [s.name for s in SCRIPTS]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_prints_what_mindspore_printed(script, tmp_path):
    missing = [n for n in _TOP_LEVEL.get(script.name, [])
               if n not in getattr(mindckpt, "__all__", ())]
    if missing:
        pytest.skip(f"waiting for top-level exports in mindckpt/__init__.py: {missing}")
    ported = tmp_path / script.name
    ported.write_text(port(script.read_text()))
    run_dir = tmp_path / "run"  # empty, as the generator's
    run_dir.mkdir()
    r = subprocess.run([sys.executable, str(ported)], cwd=run_dir, capture_output=True,
                       text=True, timeout=120, env={**os.environ, "MINDCKPT_FSYNC": "0"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == GOLDEN[script.name]
