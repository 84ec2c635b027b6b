"""CUDA models: what a save costs the training loop.

    python benchmarks/bench_cuda.py [--size-mib 1024] [--repeats 3]

For a model of CUDA tensors (bf16 and fp32 mix) it measures, each as a median:
* floor: one device-to-host copy of every tensor into page-locked memory (torch, non_blocking),
  and into fresh pageable memory (``.cpu()``);
* mindckpt ``async_save=True``: the time the call blocks (first save, then a reused arena);
* mindckpt synchronous save, and torch.save of the same state_dict (both to local disk);
* load back into the CUDA module: ``load_checkpoint`` + ``load_param_into_net``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

import torch  # noqa: E402

import mindckpt as ms  # noqa: E402


def model_state(size_mib: int) -> dict[str, torch.Tensor]:
    g = torch.Generator(device="cuda").manual_seed(0)
    hidden, n = 4096, 0
    out: dict[str, torch.Tensor] = {}
    i = 0
    while n < size_mib * 2**20:
        dt = torch.bfloat16 if i % 2 else torch.float32
        w = torch.randn(hidden, hidden // 2, device="cuda", generator=g).to(dt)
        b = torch.randn(hidden, device="cuda", generator=g)
        out[f"l{i}.weight"], out[f"l{i}.bias"] = w, b
        n += w.numel() * w.element_size() + b.numel() * 4
        i += 1
    return out


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    state = model_state(args.size_mib)
    nbytes = sum(t.numel() * t.element_size() for t in state.values())
    gib = nbytes / 2**30
    d = tempfile.mkdtemp(prefix="bench-cuda-")
    print(f"{torch.cuda.get_device_name()}: {len(state)} CUDA tensors, {gib:.2f} GiB; "
          f"{os.cpu_count()} CPUs; median of {args.repeats}")
    pinned = {k: torch.empty(v.shape, dtype=v.dtype, pin_memory=True) for k, v in state.items()}

    def d2h_pinned():
        for k, v in state.items():
            pinned[k].copy_(v, non_blocking=True)
        torch.cuda.synchronize()

    def d2h_pageable():
        return {k: v.cpu() for k, v in state.items()}

    rows = []
    rows.append(("D2H into pinned memory (floor)", timed(d2h_pinned, args.repeats)))
    rows.append(("D2H into fresh pageable memory (.cpu())", timed(d2h_pageable, args.repeats)))
    path = os.path.join(d, "m.ckpt")
    first = timed(lambda: ms.save_checkpoint(state, path, async_save=True), 1)
    ms.async_writer.wait()
    stalls = []
    for _ in range(args.repeats):
        stalls += timed(lambda: ms.save_checkpoint(state, path, async_save=True), 1)
        ms.async_writer.wait()
    rows.append(("mindckpt async_save=True, first call (arena faulted, pinned)", first))
    rows.append(("mindckpt async_save=True, blocking time (reused arena)", stalls))
    rows.append(("mindckpt save_checkpoint sync (fsync)", timed(lambda: ms.save_checkpoint(state, path), args.repeats)))
    rows.append(("torch.save (no fsync)", timed(lambda: torch.save(state, os.path.join(d, "t.pt")), args.repeats)))
    module = torch.nn.Module()
    for k, v in state.items():
        module.register_buffer(k.replace(".", "_"), torch.empty_like(v))
    renamed = {k.replace(".", "_"): v for k, v in state.items()}
    ms.save_checkpoint(renamed, path)
    rows.append(("mindckpt load_checkpoint + load_param_into_net (CUDA)",
                 timed(lambda: ms.load_param_into_net(module, ms.load_checkpoint(path)), args.repeats)))
    rows.append(("torch.load(map_location='cuda')",
                 timed(lambda: torch.load(os.path.join(d, "t.pt"), map_location="cuda", weights_only=True), args.repeats)))
    floor = statistics.median(rows[0][1])
    print("\n| case | median s | GiB/s | x pinned D2H |\n|---|---|---|---|")
    for name, ts in rows:
        m = statistics.median(ts)
        print(f"| {name} | {m:.3f} | {gib / m:.2f} | {m / floor:.2f} |")


if __name__ == "__main__":
    main()
