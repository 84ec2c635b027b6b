"""Reshard a sliced checkpoint 8 -> 2 ranks with mindckpt and with MindSpore, same run.

    .venv/bin/python benchmarks/bench_transform.py [--size-mib 2048] [--tensors 16]
        [--src 8] [--dst 2] [--repeats 1] [--format ckpt] [--dir DIR] [--keep]

The source is ``--src`` rank files holding ``--size-mib`` MiB in total (float32, no replicas):
half of the tensors split along dim 0 over all ranks and resharded to dim 1 over ``--dst``
ranks, half the other way round, so every destination slice gathers from every source file.
Both tools run ``transform_checkpoints(src_dir, dst_dir, prefix, src_strategy, dst_strategy)``
in a fresh process (MindSpore's under ``MINDCKPT_MS_PYTHON`` / ``/work/msvenv``).  Columns:

* ``seconds``: wall time of the call (sources warm in the page cache, outputs to the page
  cache: MINDCKPT_FSYNC=0 unless ``--fsync``);
* ``peak+MiB``: VmHWM during the call minus VmRSS just before it;
* the targets of issue 9: >= 3x faster than MindSpore, peak <= 1.5 x the largest full tensor
  + 256 MiB.  The outputs of the two tools are compared byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

RUNNER = r"""
import json, os, sys, time
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
tool, args = sys.argv[1], json.loads(sys.argv[2])
if tool == "mindspore":
    os.environ.setdefault("GLOG_v", "3")
    import mindspore
    fn = mindspore.parallel.transform_checkpoints
else:
    sys.path.insert(0, args.pop("src_path"))
    import mindckpt.parallel
    fn = mindckpt.parallel.transform_checkpoints
before = status("VmRSS")
t0 = time.perf_counter()
fn(args["src"], args["dst"], "t", args["src_strategy"], args["dst_strategy"])
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "peak_plus": status("VmHWM") - before}))
"""


def ms_python() -> str | None:
    env = os.environ.get("MINDCKPT_MS_PYTHON")
    if env:
        return env
    return "/work/msvenv/bin/python" if os.path.exists("/work/msvenv/bin/python") else None


def make_source(root: str, size_mib: int, n_tensors: int, src: int, dst: int, fmt: str,
                ) -> tuple[str, str, int]:
    import mindckpt as ms
    from mindckpt.parallel import TensorLayout, write_strategy

    per = size_mib * 2**20 // n_tensors // 4  # float32 elements per tensor
    cols = 1024
    rows = per // cols
    rows -= rows % (src * dst)
    shape = (rows, cols)
    src_l, dst_l = {}, {}
    for i in range(n_tensors):
        name = f"layers.{i}.weight"
        if i % 2 == 0:
            src_l[name] = TensorLayout([src], [0, -1], shape)
            dst_l[name] = TensorLayout([dst], [-1, 0], shape)
        else:
            src_l[name] = TensorLayout([src], [-1, 0], shape)
            dst_l[name] = TensorLayout([dst], [0, -1], shape)
    write_strategy(os.path.join(root, "src_strategy.ckpt"), src_l)
    write_strategy(os.path.join(root, "dst_strategy.ckpt"), dst_l)
    rng = np.random.default_rng(0)
    per_rank: list[list[dict]] = [[] for _ in range(src)]
    for name, lay in src_l.items():
        full = rng.standard_normal(shape, dtype=np.float32)
        for r in range(src):
            b = lay.box(r)
            per_rank[r].append({"name": name, "data": ms.Tensor(np.ascontiguousarray(
                full[b[0][0]:b[0][1], b[1][0]:b[1][1]]))})
        del full
    for r in range(src):
        d = os.path.join(root, "src", f"rank_{r}")
        os.makedirs(d, exist_ok=True)
        ms.save_checkpoint(per_rank[r], os.path.join(d, f"net-1_1.{fmt}"), format=fmt)
        per_rank[r] = []
    return os.path.join(root, "src"), shape, rows * cols * 4


def run(py: str, tool: str, args: dict, env: dict) -> dict:
    r = subprocess.run([py, "-c", RUNNER, tool, json.dumps(args)], capture_output=True,
                       text=True, env=env, cwd=tempfile.gettempdir())
    if r.returncode != 0:
        return {"error": r.stderr.strip()[-800:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def digest(directory: str) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(directory):
        for f in files:
            h = hashlib.sha256()
            with open(os.path.join(dirpath, f), "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 24), b""):
                    h.update(chunk)
            out[os.path.relpath(os.path.join(dirpath, f), directory)] = h.hexdigest()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=2048)
    ap.add_argument("--tensors", type=int, default=16)
    ap.add_argument("--src", type=int, default=8)
    ap.add_argument("--dst", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--format", default="ckpt", choices=["ckpt", "safetensors"])
    ap.add_argument("--dir", default=None)
    ap.add_argument("--fsync", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="bench_transform_", dir=a.dir)
    env = dict(os.environ)
    env["MINDCKPT_FSYNC"] = "1" if a.fsync else "0"
    env.pop("PYTHONPATH", None)
    try:
        src_dir, shape, tensor_bytes = make_source(root, a.size_mib, a.tensors, a.src, a.dst,
                                                   a.format)
        print(f"source: {a.src} ranks, {a.tensors} tensors of {shape} float32 "
              f"({tensor_bytes / 2**20:.0f} MiB each, {a.tensors * tensor_bytes / 2**20:.0f} "
              f"MiB total), {a.format}; {a.src} -> {a.dst} ranks; fsync={'on' if a.fsync else 'off'}")
        tools = [("mindckpt", sys.executable)]
        msp = ms_python()
        if msp:
            tools.append(("mindspore", msp))
        results: dict[str, list[dict]] = {t: [] for t, _ in tools}
        digests = {}
        for rep in range(a.repeats):
            for tool, py in tools:
                out = os.path.join(root, f"out_{tool}")
                shutil.rmtree(out, ignore_errors=True)
                args = {"src": src_dir, "dst": out,
                        "src_strategy": os.path.join(root, "src_strategy.ckpt"),
                        "dst_strategy": os.path.join(root, "dst_strategy.ckpt"),
                        "src_path": os.path.join(ROOT, "src")}
                res = run(py, tool, args, env)
                results[tool].append(res)
                if "error" in res:
                    print(f"{tool}: FAILED: {res['error']}")
                elif rep == 0:
                    digests[tool] = digest(out)
        print(f"{'tool':<10} {'seconds (median)':>17} {'spread':>14} {'peak+MiB':>9}")
        med = {}
        for tool, rs in results.items():
            ok = [r for r in rs if "error" not in r]
            if not ok:
                continue
            secs = [r["seconds"] for r in ok]
            peak = max(r["peak_plus"] for r in ok) / 2**20
            med[tool] = (statistics.median(secs), peak)
            print(f"{tool:<10} {statistics.median(secs):>17.2f} "
                  f"{min(secs):>6.2f}-{max(secs):<7.2f} {peak:>9.0f}")
        target_peak = 1.5 * tensor_bytes / 2**20 + 256
        if "mindckpt" in med:
            print(f"mindckpt peak {med['mindckpt'][1]:.0f} MiB vs target "
                  f"{target_peak:.0f} MiB (1.5 x largest full tensor + 256 MiB): "
                  f"{'met' if med['mindckpt'][1] <= target_peak else 'NOT met'}")
        if "mindckpt" in med and "mindspore" in med:
            speed = med["mindspore"][0] / med["mindckpt"][0]
            mem = med["mindspore"][1] / max(med["mindckpt"][1], 1)
            print(f"speed-up vs MindSpore: {speed:.2f}x (target >= 3x: "
                  f"{'met' if speed >= 3 else 'NOT met'}); MindSpore peak / mindckpt peak: "
                  f"{mem:.1f}x")
            same = digests.get("mindckpt") == digests.get("mindspore")
            print(f"outputs byte-identical to MindSpore's: {same}")
            if not same:
                return 1
        return 0
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
