"""Write tests/compat/golden/mindspore_compat.json from real MindSpore 2.10.

Run with the MindSpore venv (never the library's)::

    /work/msvenv/bin/python tests/compat/golden/make_golden.py

It records, for tests/compat/test_scenarios.py:

* ``scenarios``: MindSpore's ``out`` for each snippet of tests/compat/scenarios.py;
* ``layers``: parameter path, name, shape, dtype and requires_grad of each layer in
  ``scenarios.LAYERS``;
* ``layer_stats``: mean/std/min/max of the initial values of ``scenarios.LAYER_STATS`` (three
  seeds pooled);
* ``init_stats`` / ``init_exact``: statistics (three seeds pooled) or values of
  ``mindspore.common.initializer.initializer`` calls in ``scenarios.INIT_STATS``/``INIT_EXACT``;
* ``context``: the keys ``get_context`` answers with their CPU defaults, the constants, and the
  messages of a few rejected ``set_context`` calls;
* ``scripts``: the standard output of each MindSpore script in tests/compat/scripts/, run
  unchanged in a fresh process and an empty directory;
* ``versions``: MindSpore, NumPy and Python.

Uses only construction, naming and numpy conversions: no MindSpore op runs.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

os.environ.setdefault("GLOG_v", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

import mindspore as ms  # noqa: E402
from mindspore import context, nn  # noqa: E402
from mindspore.common import dtype as mstype  # noqa: E402

import scenarios  # noqa: E402


def jsonable(v):
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    return repr(v)


def run_snippet(src):
    ns = {"ms": ms, "nn": nn, "np": np, "mstype": mstype, "OrderedDict": OrderedDict}
    exec(scenarios.PRELUDE, ns)  # noqa: S102
    exec(src, ns)  # noqa: S102
    return jsonable(ns["out"])


def layer_params(expr):
    ns = {"ms": ms, "nn": nn, "np": np, "OrderedDict": OrderedDict}
    cell = eval(expr, ns)  # noqa: S307
    return [[path, p.name, list(p.shape), str(p.dtype), p.requires_grad]
            for path, p in cell.parameters_and_names()]


def layer_stats(expr):
    pooled: dict[str, list] = {}
    for seed in (1, 2, 3):
        ms.set_seed(seed)
        np.random.seed(seed)
        cell = eval(expr, {"ms": ms, "nn": nn})  # noqa: S307
        for path, p in cell.parameters_and_names():
            pooled.setdefault(path, []).append(p.asnumpy().astype(np.float64).ravel())
    out = {}
    for path, chunks in pooled.items():
        a = np.concatenate(chunks)
        out[path] = {"n": int(a.size), "mean": float(a.mean()), "std": float(a.std()),
                     "min": float(a.min()), "max": float(a.max())}
    return out


def _init_ns():
    from mindspore.common import initializer as mi

    return {"ms": ms, **{n: getattr(mi, n) for n in mi.__all__}}


def init_stats(expr):
    a = []
    for seed in (1, 2, 3):
        ms.set_seed(seed)
        np.random.seed(seed)
        t = eval(expr, _init_ns())  # noqa: S307
        a.append(t.init_data().asnumpy().astype(np.float64).ravel())
    x = np.concatenate(a)
    t = eval(expr, _init_ns())  # noqa: S307
    return {"n": int(x.size), "mean": float(x.mean()), "std": float(x.std()),
            "min": float(x.min()), "max": float(x.max()), "dtype": str(t.dtype),
            "shape": list(t.shape), "zero_fraction": float((x == 0).mean())}


def init_exact(expr):
    t = eval(expr, _init_ns())  # noqa: S307
    return {"dtype": str(t.dtype), "shape": list(t.shape),
            "value": t.init_data().asnumpy().tolist()}


def context_facts():
    ctx = context._context()  # noqa: SLF001
    keys = sorted(set(ctx.setters) | {k for k in context.ms_ctx_param.__members__ if k[0] != "_"}
                  | {"reserve_class_name_in_scope", "enable_debug_runtime", "enable_ge",
                     "support_binary"})  # properties of MindSpore's _Context
    defaults = {}
    for k in keys:
        try:
            defaults[k] = jsonable(context.get_context(k))
        except Exception as e:  # noqa: BLE001
            defaults[k] = {"error": f"{type(e).__name__}: {e}"}
    rejected = {}
    for label, kw in {"unknown": {"foo": 1}, "mode_value": {"mode": 5}, "mode_type": {"mode": "graph"},
                      "device_target": {"device_target": "TPU"},
                      "device_id_type": {"device_id": "0"}, "removed": {"grad_for_scalar": True},
                      "ascend_only": {"precision_mode": "x"}, "save_graphs": {"save_graphs": 5},
                      "typed_but_unknown": {"save_compile_cache": True},
                      "bool_setter": {"reserve_class_name_in_scope": 1}}.items():
        try:
            context.set_context(**kw)
            rejected[label] = None
        except Exception as e:  # noqa: BLE001
            rejected[label] = [type(e).__name__, str(e)]
    try:
        context.get_context("foo")
        get_unknown = None
    except Exception as e:  # noqa: BLE001
        get_unknown = [type(e).__name__, str(e)]
    consts = {n: getattr(context, n) for n in
              ("GRAPH_MODE", "PYNATIVE_MODE", "STRICT", "COMPATIBLE", "LAX", "DEBUG", "RELEASE")}
    context.set_context(mode=context.GRAPH_MODE, device_target="CPU")
    after = [context.get_context("mode"), context.get_context("device_target")]
    return {"defaults": defaults, "rejected": rejected, "get_unknown": get_unknown,
            "constants": consts, "after_set": after,
            "machine_dependent": ["runtime_num_threads", "max_device_memory"]}


def script_outputs():
    out = {}
    for script in sorted((HERE.parent / "scripts").glob("*.py")):
        with tempfile.TemporaryDirectory() as cwd:
            r = subprocess.run([sys.executable, str(script)], cwd=cwd, capture_output=True,
                               text=True, timeout=600, env={**os.environ, "GLOG_v": "3"})
        if r.returncode != 0:
            raise RuntimeError(f"{script.name} failed under MindSpore:\n{r.stderr[-3000:]}")
        out[script.name] = r.stdout
    return out


def main():
    golden = {
        "versions": {"mindspore": ms.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "scenarios": {name: run_snippet(src) for name, src in scenarios.SNIPPETS.items()},
        "layers": {expr: layer_params(expr) for expr in scenarios.LAYERS},
        "layer_stats": {expr: layer_stats(expr) for expr in scenarios.LAYER_STATS},
        "init_stats": {expr: init_stats(expr) for expr in scenarios.INIT_STATS},
        "init_exact": {expr: init_exact(expr) for expr in scenarios.INIT_EXACT},
        "scripts": script_outputs(),
    }
    golden["context"] = context_facts()  # last: it changes the mode
    path = HERE / "mindspore_compat.json"
    path.write_text(json.dumps(golden, indent=1, sort_keys=False) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
