"""Many small entries: microseconds per record and peak memory against the file size.

    .venv/bin/python benchmarks/bench_small_records.py [--records 1000000] [--repeats 3]
        [--before REV]

For each format (``.ckpt`` with 1-element float32 records, safetensors with zero-size float32
entries, the two layouts of issue 13) and each operation (``scan``: the index only;
``read``: the pipeline's read of every entry; ``load``: ``load_checkpoint``, which adds the
Parameters), every case runs in a fresh process and reports the median of ``--repeats`` runs
with the spread, the CPU microseconds per record, and the peak resident memory it added
(VmHWM minus VmRSS before the call, the result included) as a multiple of the file size.
``--before REV`` (default: the commit before the fast path) runs the same cases against that
revision of ``src/`` (exported with ``git archive`` into a temporary directory) and prints the
ratios.  The files are made once per run with the current code; both read the same bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_BEFORE = "b98ab5f"  # the tree before formats' fast path (issue 13 point 8)

CHILD = r"""
import gc, json, os, sys, time
import mindckpt as ms
import mindckpt.codecs.crypto, mindckpt.pipeline  # imported before the clock starts
from mindckpt.pipeline import open_file
from mindckpt.storage.local import LOCAL
path, fmt, op = sys.argv[1:4]
gc.collect()
rss0 = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
t0 = time.process_time()
if op == "scan":
    with open_file(LOCAL, path, format=fmt) as r:
        n = len(r.index)
elif op == "read":
    with open_file(LOCAL, path, format=fmt) as r:
        n = len(r.read())
else:
    n = len(ms.load_checkpoint(path, format=fmt))
dt = time.process_time() - t0
hwm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"n": n, "seconds": dt, "peak": hwm - rss0}))
"""


def make_files(d: str, n: int) -> dict[str, str]:
    code = r"""
import sys, numpy as np
from mindckpt.formats.records import Record
from mindckpt.pipeline import write_file
from mindckpt.storage.local import LOCAL
d, n = sys.argv[1], int(sys.argv[2])
write_file(LOCAL, d + "/tiny.ckpt", [Record(f"p{i}", np.zeros(1, np.float32)) for i in range(n)])
write_file(LOCAL, d + "/tiny.safetensors",
           [Record(f"p{i}", np.zeros(0, np.float32)) for i in range(n)], fmt="safetensors")
"""
    subprocess.run([sys.executable, "-c", code, d, str(n)], check=True,
                   env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src")))
    return {"ckpt": d + "/tiny.ckpt", "safetensors": d + "/tiny.safetensors"}


def run(src: str, path: str, fmt: str, op: str, repeats: int) -> dict:
    got = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", CHILD, path, fmt, op], check=True,
                             capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=src, MINDCKPT_FSYNC="0"))
        got.append(json.loads(out.stdout.strip().splitlines()[-1]))
    secs = [g["seconds"] for g in got]
    return {"n": got[0]["n"], "median": statistics.median(secs),
            "spread": max(secs) - min(secs), "peak": max(g["peak"] for g in got)}


def export(rev: str, d: str) -> str:
    arch = subprocess.run(["git", "-C", ROOT, "archive", rev, "src/mindckpt"], check=True,
                          capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", d], input=arch, check=True)
    return os.path.join(d, "src")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--before", default=DEFAULT_BEFORE, help="git revision to compare ('' = none)")
    ap.add_argument("--ops", default="scan,read,load")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        files = make_files(d, args.records)
        trees = {"now": os.path.join(ROOT, "src")}
        if args.before:
            os.mkdir(os.path.join(d, "before"))
            trees = {"before": export(args.before, os.path.join(d, "before")), **trees}
        print(f"{args.records} records; median of {args.repeats} fresh processes; CPU time")
        print(f"{'format':12s} {'op':5s} {'tree':7s} {'us/rec':>8s} {'spread':>7s} "
              f"{'peak/file':>9s} {'file MB':>8s}")
        for fmt, path in files.items():
            size = os.path.getsize(path)
            for op in args.ops.split(","):
                res = {}
                for tree, src in trees.items():
                    r = res[tree] = run(src, path, fmt, op, args.repeats)
                    n = max(r["n"], 1)
                    print(f"{fmt:12s} {op:5s} {tree:7s} {r['median'] / n * 1e6:8.2f} "
                          f"{r['spread'] / n * 1e6:7.2f} {r['peak'] / size:9.1f} "
                          f"{size / 1e6:8.1f}", flush=True)
                if len(res) == 2:
                    print(f"{'':12s} {op:5s} {'ratio':7s} "
                          f"{res['before']['median'] / res['now']['median']:8.1f}x faster, "
                          f"memory {res['before']['peak'] / max(res['now']['peak'], 1):.2f}x less")


if __name__ == "__main__":
    main()
