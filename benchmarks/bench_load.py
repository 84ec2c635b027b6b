"""Loads side by side: mindckpt, MindSpore, safetensors and torch, "ready" times and memory.

    .venv/bin/python benchmarks/bench_load.py [--size-mib 1024] [--repeats 3] [--dir DIR]

Every case runs in a fresh process on a file in the page cache (warm).  "ready" is the time
until the call returned *and* every page of the result was touched (a mapped load pays its
page faults there).  Memory: ``peak+MiB`` is VmHWM minus VmRSS before the call (mapped file
pages count); ``anon+MiB`` is the highest private (anonymous) memory seen during the call, in
MiB above the start, sampled every millisecond: what the load really allocates.

Cases: dict loads (``load_checkpoint`` .ckpt read / .ckpt mmap / safetensors, MindSpore's
.ckpt and safetensors, ``safetensors.torch.load_file``, ``torch.load(mmap=True)``) and loads
into an existing torch module (``load_checkpoint(net=module)`` .ckpt / safetensors,
``load_param_into_net(module, load_checkpoint(...))``, ``torch.load(mmap=True)`` +
``load_state_dict``, ``safetensors.torch.load_model``).  Ratios are against the fastest peer of
the same kind.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from bench_core import _status, build_model, model_spec, ms_python, reset_peak  # noqa: E402

DICT_CASES = ["mindckpt.ckpt", "mindckpt.ckpt.mmap", "mindckpt.safetensors",
              "mindspore.ckpt", "mindspore.safetensors", "safetensors.torch", "torch.mmap"]
MODULE_CASES = ["module.mindckpt.ckpt", "module.mindckpt.safetensors",
                "module.mindckpt.param_into_net", "module.torch.mmap", "module.safetensors"]
FILES = {"ckpt": "m.ckpt", "safetensors": "m.safetensors", "pt": "m.pt"}


def _module(spec: list) -> object:
    import torch

    class Flat(torch.nn.Module):
        pass

    m = Flat()
    for name, shape in spec:
        parent = m
        *path, leaf = name.split(".")
        for part in path:
            if not hasattr(parent, part):
                parent.add_module(part, Flat())
            parent = getattr(parent, part)
        parent.register_parameter(leaf, torch.nn.Parameter(torch.empty(shape),
                                                           requires_grad=False))
    return m


def _touch(obj: object) -> float:
    """Read one byte of every page of every array in ``obj`` (dict, list, module)."""
    try:
        import torch
    except ImportError:  # MindSpore's venv
        torch = None
    total = 0.0
    if torch is not None and isinstance(obj, torch.nn.Module):
        values = list(obj.state_dict().values())
    elif isinstance(obj, dict):
        values = list(obj.values())
    else:
        values = list(obj)
    for v in values:
        if hasattr(v, "asnumpy"):
            v = v.asnumpy()
        if torch is not None and isinstance(v, torch.Tensor):
            v = v.detach().numpy()
        if isinstance(v, np.ndarray) and v.size:
            total += float(v.reshape(-1).view(np.uint8)[::4096].sum())
    return total


class _AnonSampler:
    def __init__(self) -> None:
        self.base = _status("RssAnon:")
        self.peak = self.base
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _status("RssAnon:"))
            time.sleep(0.001)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _status("RssAnon:"))
        return self.peak - self.base


def case(name: str, d: str, spec: list, m: object = None) -> object:
    ckpt, st, pt = (os.path.join(d, FILES[k]) for k in ("ckpt", "safetensors", "pt"))
    if name.startswith("module."):
        import torch

        kind = name[len("module."):]
        if kind == "mindckpt.ckpt":
            import mindckpt as ms

            ms.load_checkpoint(ckpt, net=m)
        elif kind == "mindckpt.safetensors":
            import mindckpt as ms

            ms.load_checkpoint(st, net=m, format="safetensors")
        elif kind == "mindckpt.param_into_net":
            import mindckpt as ms

            ms.load_param_into_net(m, ms.load_checkpoint(ckpt))
        elif kind == "torch.mmap":
            m.load_state_dict(torch.load(pt, mmap=True, weights_only=True))
        elif kind == "safetensors":
            from safetensors.torch import load_model

            load_model(m, st)
        return m
    if name == "mindckpt.ckpt":
        import mindckpt as ms

        return ms.load_checkpoint(ckpt, mmap=False)
    if name == "mindckpt.ckpt.mmap":
        import mindckpt as ms

        return ms.load_checkpoint(ckpt, mmap=True)
    if name == "mindckpt.safetensors":
        import mindckpt as ms

        return ms.load_checkpoint(st, format="safetensors")
    if name == "mindspore.ckpt":
        import mindspore

        return mindspore.load_checkpoint(ckpt)
    if name == "mindspore.safetensors":
        import mindspore

        return mindspore.load_checkpoint(st, format="safetensors")
    if name == "safetensors.torch":
        from safetensors.torch import load_file

        return load_file(st)
    if name == "torch.mmap":
        import torch

        return torch.load(pt, mmap=True, weights_only=True)
    raise ValueError(name)


def child(args: argparse.Namespace) -> None:
    spec = model_spec(args.size_mib)
    if not args.case.startswith("mindspore"):
        sys.path.insert(0, os.path.join(ROOT, "src"))
        import torch  # noqa: F401 - imports are not what is measured
    mods = {"mindckpt": "mindckpt", "mindspore": "mindspore", "safetensors": "safetensors.torch"}
    head = args.case.split(".")[1 if args.case.startswith("module.") else 0]
    if head in mods:
        __import__(mods[head])
    for f in FILES.values():  # warm page cache
        p = os.path.join(args.dir, f)
        with open(p, "rb") as fh:
            while fh.read(1 << 24):
                pass
    module = None
    if args.case.startswith("module."):
        module = _module(spec)  # the target exists before the load, its memory touched
        _touch(module)
        for p in module.parameters():
            p.data.zero_()
    base = _status("VmRSS:")
    reset_peak()
    sampler = _AnonSampler()
    t0 = time.perf_counter()
    out = case(args.case, args.dir, spec, module)
    returned = time.perf_counter() - t0
    _touch(out)
    ready = time.perf_counter() - t0
    anon = sampler.stop()
    peak = _status("VmHWM:") - base
    print("RESULT " + json.dumps({"returned": returned, "ready": ready, "peak": peak,
                                  "anon": anon}))


def setup(d: str, size_mib: int, msp: str | None) -> int:
    sys.path.insert(0, os.path.join(ROOT, "src"))
    import torch
    import mindckpt as ms

    model = build_model(size_mib)
    tensors = {k: torch.from_numpy(v) for k, v in model.items()}
    ms.save_checkpoint(tensors, os.path.join(d, FILES["ckpt"]))
    ms.save_checkpoint(tensors, os.path.join(d, FILES["safetensors"]), format="safetensors")
    torch.save(tensors, os.path.join(d, FILES["pt"]))
    return max(v.nbytes for v in model.values())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir")
    ap.add_argument("--cases", default=",".join(DICT_CASES + MODULE_CASES))
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--case")
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    d = args.dir or tempfile.mkdtemp(prefix="mindckpt-bench-load-", dir=ROOT)
    os.makedirs(d, exist_ok=True)
    msp = ms_python()
    largest = setup(d, args.size_mib, msp)
    cases = args.cases.split(",")
    if msp is None:
        cases = [c for c in cases if not c.startswith("mindspore")]
        print("MindSpore not available: skipping its cases")
    spec = model_spec(args.size_mib)
    nbytes = sum(int(np.prod(s)) * 4 for _, s in spec)
    print(f"model: {len(spec)} float32 tensors, {nbytes / 2**30:.3f} GiB, largest "
          f"{largest / 2**20:.0f} MiB; {args.repeats} repeats (median, min-max); warm cache")
    rows: dict[str, dict] = {}
    for c in cases:
        py = msp if c.startswith("mindspore") else sys.executable
        res = []
        for _ in range(args.repeats):
            cmd = [py, os.path.abspath(__file__), "--child", "--case", c, "--dir", d,
                   "--size-mib", str(args.size_mib)]
            p = subprocess.run(cmd, capture_output=True, text=True,
                               env=dict(os.environ, GLOG_v="3"))
            line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
            if not line:
                print(f"ERROR {c}: {p.stderr[-800:]}")
                break
            res.append(json.loads(line[-1][7:]))
        if res:
            rows[c] = {k: [r[k] for r in res] for k in res[0]}
    print("\n| case | returned s | ready s (min-max) | peak +MiB | anon +MiB | x best peer |")
    print("|---|---|---|---|---|---|")
    dict_peers = [c for c in ("mindspore.safetensors", "safetensors.torch", "torch.mmap",
                              "mindspore.ckpt") if c in rows]
    mod_peers = [c for c in ("module.torch.mmap", "module.safetensors") if c in rows]

    def med(c: str, k: str) -> float:
        return statistics.median(rows[c][k])

    for c, r in rows.items():
        peers = mod_peers if c.startswith("module.") else dict_peers
        if c.startswith("mindckpt.safetensors"):
            peers = [p for p in ("mindspore.safetensors", "safetensors.torch") if p in rows]
        if c.startswith("mindckpt.ckpt"):
            peers = [p for p in ("mindspore.ckpt",) if p in rows]
        best = min((med(p, "ready") for p in peers if not p.startswith("mindckpt")),
                   default=None)
        ratio = f"{med(c, 'ready') / best:.2f}" if best and c.split(".")[0] in (
            "mindckpt", "module") and "mindckpt" in c else "-"
        print(f"| {c} | {med(c, 'returned'):.3f} | {med(c, 'ready'):.3f} "
              f"({min(r['ready']):.3f}-{max(r['ready']):.3f}) | {med(c, 'peak') / 2**20:.0f} "
              f"| {med(c, 'anon') / 2**20:.0f} | {ratio} |")
    print("\nx best peer: mindckpt's ready time / the fastest peer's of the same kind "
          "(safetensors: MindSpore's safetensors, safetensors.torch; .ckpt: MindSpore's .ckpt, "
          "where lower is better; modules: torch.load(mmap)+load_state_dict, "
          f"safetensors.torch.load_model). Largest tensor {largest / 2**20:.0f} MiB.")
    if not args.dir:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
