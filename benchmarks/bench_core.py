"""Save and load one float32 model with mindckpt, MindSpore, torch and safetensors.

    .venv/bin/python benchmarks/bench_core.py [--size-mib 1024] [--repeats 3] [--dir DIR]

Every case runs in a fresh process (MindSpore's under ``MINDCKPT_MS_PYTHON``, found as the
interop tests find it).  The model is deterministic random float32 shaped like a transformer
(large matrices, many small vectors).  Columns:

* ``returned``: seconds until the call returns; for saves ``durable`` adds fsync of file and
  directory (mindckpt fsyncs by itself; run with MINDCKPT_FSYNC=0 for the page-cache figure);
* ``peak+MiB``: VmHWM during the call minus VmRSS before it (a load's peak includes its result);
* ratios against MindSpore and against the raw write/read of the same bytes.
Warm loads read a file in the page cache; cold loads drop it first (fsync + FADV_DONTNEED).
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
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# ---------------------------------------------------------------- model and measurement helpers


def model_spec(size_mib: int) -> list[tuple[str, tuple[int, ...]]]:
    """A transformer-like list of (name, shape) totalling about size_mib MiB of float32."""
    hidden = 1024
    vocab = 32000
    per_layer = 4 * hidden * hidden + 2 * hidden * 4 * hidden  # attention + MLP matrices
    embed = vocab * hidden if size_mib >= 512 else 0
    layers = max(1, round((size_mib * 2**20 / 4 - embed) / per_layer))
    spec = [("embed.weight", (vocab, hidden))] if embed else []
    for i in range(layers):
        p = f"layers.{i}."
        for m in ("q", "k", "v", "o"):
            spec.append((p + f"attn.{m}.weight", (hidden, hidden)))
            spec.append((p + f"attn.{m}.bias", (hidden,)))
        spec.append((p + "mlp.up.weight", (4 * hidden, hidden)))
        spec.append((p + "mlp.down.weight", (hidden, 4 * hidden)))
        for n in ("ln1", "ln2"):
            spec.append((p + f"{n}.gamma", (hidden,)))
            spec.append((p + f"{n}.beta", (hidden,)))
    return spec


def build_model(size_mib: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {n: rng.standard_normal(s, dtype=np.float32) for n, s in model_spec(size_mib)}


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def durable(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    d = os.open(os.path.dirname(path), os.O_RDONLY)
    os.fsync(d)
    os.close(d)


def drop_cache(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)


# ---------------------------------------------------------------- cases (run in the child)


KEY = bytes(range(32))  # AES-256 for the AES modes; SM4 takes 16 bytes


def key_for(mode: str) -> bytes:
    return KEY[:16] if mode == "SM4-CBC" else KEY


def case_save(lib: str, model: dict[str, np.ndarray], path: str, enc: str | None = None) -> None:
    kw = {"enc_key": key_for(enc), "enc_mode": enc} if enc else {}
    if lib == "raw":
        with open(path, "wb") as f:
            for a in model.values():
                f.write(memoryview(a).cast("B"))
    elif lib == "mindckpt":
        import mindckpt as ms

        ms.save_checkpoint({k: ms.Parameter(ms.Tensor(v), name=k) for k, v in model.items()}, path,
                           **kw)
    elif lib == "mindspore":
        import mindspore as mst

        mst.save_checkpoint({k: mst.Parameter(mst.Tensor(v), name=k) for k, v in model.items()},
                            path, **kw)
    elif lib == "torch":
        import torch

        torch.save({k: torch.from_numpy(v) for k, v in model.items()}, path)
    elif lib == "safetensors":
        from safetensors.numpy import save_file

        save_file(model, path)
    else:
        raise ValueError(lib)


def case_load(lib: str, path: str, spec: list, enc: str | None = None) -> object:
    kw = {"dec_key": key_for(enc), "dec_mode": enc} if enc else {}
    if lib == "raw":
        out = []
        with open(path, "rb", buffering=0) as f:
            for _, shape in spec:
                a = np.empty(shape, np.float32)
                f.readinto(memoryview(a).cast("B"))
                out.append(a)
        return out
    if lib == "mindckpt":
        import mindckpt as ms

        return ms.load_checkpoint(path, **kw)
    if lib == "mindspore":
        import mindspore as mst

        return mst.load_checkpoint(path, **kw)
    if lib == "torch":
        import torch

        return torch.load(path, weights_only=True)
    if lib == "safetensors":
        from safetensors.numpy import load_file

        return load_file(path)
    raise ValueError(lib)


EXT = {"raw": ".bin", "mindckpt": ".ckpt", "mindspore": ".ckpt", "torch": ".pt",
       "safetensors": ".safetensors"}


def child(args: argparse.Namespace) -> None:
    spec = model_spec(args.size_mib)
    suffix = f".{args.enc}" if args.enc else ""
    path = os.path.join(args.dir, f"{args.lib}{suffix}{EXT[args.lib]}")
    if args.lib != "mindspore":
        sys.path.insert(0, os.path.join(ROOT, "src"))
    res: dict = {}
    if args.op == "save":
        model = build_model(args.size_mib)
        if os.path.exists(path):  # every library starts from a fresh target: replacing an
            os.chmod(path, 0o600)  # existing file makes ext4 flush on rename (auto_da_alloc)
            os.remove(path)
        warm = path + ".warmup" + EXT[args.lib]
        case_save(args.lib, {k: v[:1] for k, v in list(model.items())[:2]}, warm)  # imports
        os.chmod(warm, 0o600)
        os.remove(warm)
        os.sync()  # no dirty pages of an earlier case throttle this one
        base = _status("VmRSS:")
        reset_peak()
        t0 = time.perf_counter()
        case_save(args.lib, model, path, args.enc)
        res["returned"] = time.perf_counter() - t0
        durable(path)
        res["durable"] = time.perf_counter() - t0
        res["peak"] = _status("VmHWM:") - base
        res["largest"] = max(a.nbytes for a in model.values())
    else:
        if args.cold:
            drop_cache(path)
        else:
            with open(path, "rb") as f:
                while f.read(1 << 24):
                    pass
        if args.lib in ("mindspore", "torch", "safetensors", "mindckpt"):
            __import__({"mindspore": "mindspore", "torch": "torch",
                        "safetensors": "safetensors.numpy", "mindckpt": "mindckpt"}[args.lib])
        base = _status("VmRSS:")
        reset_peak()
        t0 = time.perf_counter()
        out = case_load(args.lib, path, spec, args.enc)
        res["returned"] = time.perf_counter() - t0
        res["peak"] = _status("VmHWM:") - base
        del out
    res["bytes"] = sum(int(np.prod(s)) * 4 for _, s in spec)
    print("RESULT " + json.dumps(res))


# ---------------------------------------------------------------- parent


def ms_python() -> str | None:
    sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
    try:
        import ms_oracle

        return ms_oracle.ms_python() if ms_oracle.available() else None
    except Exception:
        return None


def run_case(py: str, op: str, lib: str, size: int, d: str, cold: bool = False,
             env: dict | None = None, enc: str | None = None) -> dict:
    cmd = [py, os.path.abspath(__file__), "--child", "--op", op, "--lib", lib,
           "--size-mib", str(size), "--dir", d] + (["--cold"] if cold else [])
    if enc:
        cmd += ["--enc", enc]
    e = dict(os.environ, GLOG_v="3", **(env or {}))
    p = subprocess.run(cmd, capture_output=True, text=True, env=e)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{op} {lib} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir")
    ap.add_argument("--libs", default="raw,mindckpt,mindspore,torch,safetensors")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--op")
    ap.add_argument("--lib")
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--enc", help="(child) encryption mode")
    ap.add_argument("--enc-modes", default="AES-GCM",
                    help="encrypted cases for mindckpt and MindSpore, comma-separated ('' for none)")
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    d = args.dir or tempfile.mkdtemp(prefix="mindckpt-bench-", dir=os.path.join(ROOT))
    os.makedirs(d, exist_ok=True)
    libs = args.libs.split(",")
    msp = ms_python()
    if "mindspore" in libs and msp is None:
        print("MindSpore not available: skipping its cases")
        libs.remove("mindspore")
    spec = model_spec(args.size_mib)
    nbytes = sum(int(np.prod(s)) * 4 for _, s in spec)
    print(f"model: {len(spec)} float32 tensors, {nbytes / 2**30:.3f} GiB, largest "
          f"{max(int(np.prod(s)) * 4 for _, s in spec) / 2**20:.0f} MiB; {args.repeats} repeats, "
          f"median; dir {d}")
    rows: dict[tuple[str, str, str], dict] = {}

    def med(results: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in results)

    for lib in libs:
        py = msp if lib == "mindspore" else sys.executable
        cases = [("save", False, None, None)]
        if lib == "mindckpt":
            cases.append(("save", False, {"MINDCKPT_FSYNC": "0"}, None))
        cases += [("load", False, None, None), ("load", True, None, None)]
        if lib in ("mindckpt", "mindspore"):
            for mode in filter(None, args.enc_modes.split(",")):
                cases += [("save", False, None, mode), ("load", False, None, mode)]
                if lib == "mindckpt":
                    cases.append(("save", False, {"MINDCKPT_FSYNC": "0"}, mode))
        for op, cold, env, enc in cases:
            try:
                res = [run_case(py, op, lib, args.size_mib, d, cold, env, enc)
                       for _ in range(args.repeats)]
            except RuntimeError as e:
                print(f"ERROR {lib} {op} {enc or ''}: {str(e)[-500:]}")
                continue
            variant = ("cold" if cold else "warm") if op == "load" else ""
            variant = ".".join(filter(None, [variant, "nofsync" if env else "", enc or ""]))
            rows[(lib, op, variant)] = {
                "returned": med(res, "returned"),
                "durable": med(res, "durable") if op == "save" else None,
                "peak": med(res, "peak"), "largest": res[0].get("largest")}
        for f in os.listdir(d):
            if f.startswith(lib + "."):
                os.remove(os.path.join(d, f))
    gib = nbytes / 2**30
    print("\n| case | returned s | durable s | GiB/s | peak +MiB | x MindSpore | x raw |")
    print("|---|---|---|---|---|---|---|")
    for (lib, op, variant), r in rows.items():
        # saves compare durable times, except 'nofsync' rows which compare returned times
        key = "durable" if op == "save" and "nofsync" not in variant else "returned"
        peer_variant = variant.replace("nofsync", "").strip(".") or ""
        ms_r = rows.get(("mindspore", op, peer_variant))
        raw_r = rows.get(("raw", op, ("warm" if op == "load" else "")
                          if variant.endswith(("GCM", "CBC")) else peer_variant))
        t = r[key]
        ms_t = ms_r and (ms_r["returned"] if "nofsync" in variant else ms_r[key])
        raw_t = raw_r and (raw_r["returned"] if "nofsync" in variant else raw_r[key])
        x_ms = f"{ms_t / t:.2f}" if ms_t else "-"
        x_raw = f"{raw_t / t:.2f}" if raw_t else "-"
        dur = f"{r['durable']:.2f}" if r["durable"] is not None else ""
        tag = ".".join(filter(None, [lib, op, variant]))
        print(f"| {tag} | {r['returned']:.2f} | {dur} | {gib / t:.2f} | {r['peak'] / 2**20:.0f} "
              f"| {x_ms} | {x_raw} |")
    mk = rows.get(("mindckpt", "save", ""))
    if mk:
        print(f"\nmindckpt save peak extra memory {mk['peak'] / 2**20:.0f} MiB; budget = largest "
              f"tensor {mk['largest'] / 2**20:.0f} MiB + 64 MiB")
    print("x MindSpore / x raw: how many times faster mindckpt (or the row's library) is than "
          "MindSpore / the raw write or read of the same bytes (saves compare durable times, "
          "'nofsync' compares returned times)")
    if not args.dir:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
