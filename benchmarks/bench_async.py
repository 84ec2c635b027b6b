"""How long does an async save block the caller, and how much does it slow training?

    .venv/bin/python benchmarks/bench_async.py [--mib 1024] [--repeats 3] [--dir DIR]

Model: float32 "transformer" of 220 tensors (one large embedding, 18 layers of 12 tensors, final
norm), about ``--mib`` MiB, saved as a dict of numpy arrays with ``mindckpt.save_checkpoint``.

Rows (medians over the repeats; "stall" = time until ``save_checkpoint`` returns):

* ``memcpy.reused``: ``numpy.copyto`` of every tensor into one pre-faulted buffer (the floor the
  thread-mode stall is compared with; target: stall <= 1.2x this).
* ``memcpy.one``: a single contiguous copy of the same bytes into a pre-faulted buffer.
* ``mindckpt.async.thread[first]``: the first async save (pays the arena's page faults).
* ``mindckpt.async.thread``: later async saves (arena reused).
* ``mindckpt.async.thread[first,prepared]``: the first save of a writer whose arena was
  prepared beforehand (``AsyncWriter.prepare``, what ``ModelCheckpoint`` does when training
  begins); the preparation's own time is shown beside it.
* ``mindckpt.async.process``: fork-based async save.
* ``mindckpt.sync``: a synchronous save (durable: fsync + rename), for scale.
* ``mindspore.async.*``: MindSpore 2.10 in a subprocess when ``/work/msvenv/bin/python`` (or
  ``$MINDCKPT_MS_PYTHON``) imports mindspore.

Then a training-like loop (1-thread torch matmuls) runs alone and while a background save runs;
the slowdown is the ratio of the mean step times.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import textwrap
import time

import numpy as np

MIB = 1 << 20


def _per_layer(d: int) -> list[tuple[str, tuple[int, ...]]]:
    return [
        ("attn.qkv.weight", (3 * d, d)),
        ("attn.qkv.bias", (3 * d,)),
        ("attn.out.weight", (d, d)),
        ("attn.out.bias", (d,)),
        ("ln1.weight", (d,)),
        ("ln1.bias", (d,)),
        ("mlp.fc1.weight", (4 * d, d)),
        ("mlp.fc1.bias", (4 * d,)),
        ("mlp.fc2.weight", (d, 4 * d)),
        ("mlp.fc2.bias", (d,)),
        ("ln2.weight", (d,)),
        ("ln2.bias", (d,)),
    ]


def transformer_shapes(total_mib: int) -> list[tuple[str, tuple[int, ...]]]:
    d = 1024
    layer_elems = sum(int(np.prod(s)) for _, s in _per_layer(d))
    total_elems = total_mib * MIB // 4
    layers = 18
    if layers * layer_elems > 0.9 * total_elems:  # small runs: shrink the layers
        scale = (0.88 * total_elems / (layers * layer_elems)) ** 0.5
        d = max(8, int(d * scale) // 8 * 8)
    return transformer_shapes_d(total_elems, d, layers)


def transformer_shapes_d(total_elems: int, d: int, layers: int) -> list:
    per_layer = _per_layer(d)
    shapes = []
    for i in range(layers):
        shapes += [(f"layers.{i}.{n}", s) for n, s in per_layer]
    shapes += [("final_ln.weight", (d,)), ("final_ln.bias", (d,))]
    used = sum(int(np.prod(s)) for _, s in shapes)
    vocab = max(1, (total_elems - used) // d)
    return [("embed.weight", (vocab, d))] + shapes  # 1 + 216 + 2 = 219 ... plus pos below


def make_model(total_mib: int) -> dict[str, np.ndarray]:
    shapes = transformer_shapes(total_mib)
    d = shapes[-1][1][0]
    shapes.insert(1, ("pos_embed.weight", (64, d)))  # 220 tensors
    rng = np.random.default_rng(0)
    return {name: rng.random(shape, dtype=np.float32) for name, shape in shapes}


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def bench_memcpy(model, repeats):
    total = sum(a.nbytes for a in model.values())
    buf = np.ones(total, np.uint8)  # pre-faulted
    per_tensor, one = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        off = 0
        for a in model.values():
            dst = buf[off : off + a.nbytes].view(a.dtype).reshape(a.shape)
            np.copyto(dst, a)
            off += a.nbytes
        per_tensor.append(time.perf_counter() - t0)
    src = np.ones(total, np.uint8)
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(buf, src)
        one.append(time.perf_counter() - t0)
    del buf, src
    return median(per_tensor), median(one)


def bench_mindckpt_async(model, mode, repeats, directory):
    import mindckpt as ms
    from mindckpt import async_writer as _async

    stalls, completes = [], []
    for i in range(repeats + (1 if mode == "thread" else 0)):
        path = os.path.join(directory, f"a_{mode}_{i}.ckpt")
        t0 = time.perf_counter()
        ms.save_checkpoint(model, path, async_save=mode)
        t1 = time.perf_counter()
        _async.wait()
        t2 = time.perf_counter()
        stalls.append(t1 - t0)
        completes.append(t2 - t0)
        os.chmod(path, 0o600)
        os.remove(path)
    return stalls, completes


def bench_prepared_first(model, directory):
    """The first async save of a writer whose arena was prepared earlier (what ModelCheckpoint
    does when training begins): stall and the preparation's own time."""
    from mindckpt._api import plan_save, run_save
    from mindckpt.async_writer import AsyncWriter
    from mindckpt.collect import collect

    writer = AsyncWriter()
    t0 = time.perf_counter()
    writer.prepare(collect(model), background=False)
    prepare = time.perf_counter() - t0
    path = os.path.join(directory, "prepared_first.ckpt")
    t0 = time.perf_counter()
    run_save(plan_save(model, path, async_save=True), writer)
    stall = time.perf_counter() - t0
    writer.close()
    complete = time.perf_counter() - t0
    os.chmod(path, 0o600)
    os.remove(path)
    return stall, complete, prepare


def bench_sync(model, repeats, directory):
    import mindckpt as ms

    times = []
    for i in range(repeats):
        path = os.path.join(directory, f"s_{i}.ckpt")
        t0 = time.perf_counter()
        ms.save_checkpoint(model, path)
        times.append(time.perf_counter() - t0)
        os.chmod(path, 0o600)
        os.remove(path)
    return times


def train_steps(seconds=None, until=None, n=256):
    """Median seconds per 'training step' (8 chained 1-thread torch matmuls) and the step count."""
    import torch

    a = torch.randn(n, n)
    b = torch.randn(n, n)
    times = []
    t_end = time.perf_counter() + (seconds or 1e9)
    while True:
        t0 = time.perf_counter()
        for _ in range(8):
            c = a @ b
            a = c * (1.0 / n)
        times.append(time.perf_counter() - t0)
        now = time.perf_counter()
        if until is not None and not until():
            break
        if seconds is not None and now > t_end:
            break
    return statistics.median(times), len(times)


def bench_slowdown(model, mode, directory):
    """Step time while the background write runs, against the same loop just before and after."""
    import torch

    import mindckpt as ms
    from mindckpt import async_writer as _async

    torch.set_num_threads(1)
    before, _ = train_steps(seconds=1.0)
    path = os.path.join(directory, f"slow_{mode}.ckpt")
    t0 = time.perf_counter()
    ms.save_checkpoint(model, path, async_save=mode)
    stall = time.perf_counter() - t0
    during, steps = train_steps(until=_async.thread_status)
    _async.wait()
    after, _ = train_steps(seconds=1.0)
    os.chmod(path, 0o600)
    os.remove(path)
    return (before + after) / 2, during, steps, stall


MS_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time, statistics
    import numpy as np
    import mindspore as ms
    from mindspore.train.serialization import _wait_async_thread_save_ckpt, _wait_async_process_save_ckpt
    spec = json.loads(sys.argv[1])
    rng = np.random.default_rng(0)
    params = {n: ms.Parameter(ms.Tensor(rng.random(tuple(s), dtype=np.float32)), name=n)
              for n, s in spec["shapes"]}
    out = {}
    for mode in ("thread", "process"):
        stalls = []
        for i in range(spec["repeats"]):
            path = os.path.join(spec["dir"], f"ms_{mode}_{i}.ckpt")
            t0 = time.perf_counter()
            ms.save_checkpoint(params, path, async_save=mode)
            stalls.append(time.perf_counter() - t0)
            _wait_async_thread_save_ckpt(); _wait_async_process_save_ckpt()
            for t in range(600):
                if os.path.exists(path):
                    break
                time.sleep(0.05)
            if os.path.exists(path):
                os.chmod(path, 0o600); os.remove(path)
        out[mode] = stalls
    print("RESULT " + json.dumps(out))
    """
)


def bench_mindspore(model, repeats, directory):
    py = os.environ.get("MINDCKPT_MS_PYTHON", "/work/msvenv/bin/python")
    if not os.path.exists(py):
        return None, f"{py} not found"
    spec = {
        "shapes": [(n, list(a.shape)) for n, a in model.items()],
        "repeats": repeats,
        "dir": directory,
    }
    try:
        proc = subprocess.run(
            [py, "-c", MS_SCRIPT, json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=directory,
        )
    except subprocess.TimeoutExpired:
        return None, "timed out"
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:]), ""
    return None, (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    p.add_argument("--no-mindspore", action="store_true")
    args = p.parse_args(argv)

    directory = tempfile.mkdtemp(prefix="bench-async-", dir=args.dir)
    try:
        model = make_model(args.mib)
        total = sum(a.nbytes for a in model.values())
        print(
            f"model: {len(model)} float32 tensors, {total / MIB:.1f} MiB "
            f"(largest {max(a.nbytes for a in model.values()) / MIB:.1f} MiB); "
            f"{os.cpu_count()} cpus; repeats {args.repeats}"
        )
        memcpy_reused, memcpy_one = bench_memcpy(model, args.repeats)
        rows = [
            ("memcpy.reused", "copyto per tensor into one pre-faulted buffer", memcpy_reused, None),
            ("memcpy.one", "one contiguous copy into a pre-faulted buffer", memcpy_one, None),
        ]
        stalls, completes = bench_mindckpt_async(model, "thread", args.repeats, directory)
        rows.append(
            (
                "mindckpt.async.thread[first]",
                "first async save: arena page faults",
                stalls[0],
                completes[0],
            )
        )
        rows.append(
            (
                "mindckpt.async.thread",
                "async_save=True, arena reused",
                median(stalls[1:]),
                median(completes[1:]),
            )
        )
        p_stall, p_complete, p_prep = bench_prepared_first(model, directory)
        rows.append(
            (
                "mindckpt.async.thread[first,prepared]",
                f"first save after prepare() ({p_prep:.3f} s, off the training path)",
                p_stall,
                p_complete,
            )
        )
        stalls_p, completes_p = bench_mindckpt_async(model, "process", args.repeats, directory)
        rows.append(
            (
                "mindckpt.async.process",
                "async_save='process' (fork)",
                median(stalls_p),
                median(completes_p),
            )
        )
        sync = bench_sync(model, args.repeats, directory)
        rows.append(("mindckpt.sync", "synchronous save (durable)", median(sync), median(sync)))
        ms_note = "skipped"
        if not args.no_mindspore:
            res, ms_note = bench_mindspore(model, args.repeats, directory)
            if res:
                rows.append(
                    (
                        "mindspore.async.thread",
                        "MindSpore 2.10 async_save=True",
                        median(res["thread"]),
                        None,
                    )
                )
                rows.append(
                    (
                        "mindspore.async.process",
                        "MindSpore 2.10 async_save='process'",
                        median(res["process"]),
                        None,
                    )
                )
                ms_note = f"thread stalls {res['thread']}, process stalls {res['process']}"

        print()
        print("| case | what | stall s | x memcpy.reused | complete s |")
        print("|---|---|---|---|---|")
        for name, what, stall, complete in rows:
            ratio = stall / memcpy_reused
            comp = f"{complete:.3f}" if complete is not None else "-"
            print(f"| `{name}` | {what} | {stall:.3f} | {ratio:.2f} | {comp} |")
        print(f"\nMindSpore: {ms_note}")

        print(
            "\n| training-like step (1-thread torch matmul) | median step ms | slowdown | steps | stall s |"
        )
        print("|---|---|---|---|---|")
        for mode in ("thread", "process"):
            base, during, steps, stall = bench_slowdown(model, mode, directory)
            print(
                f"| while async_save={mode!r} writes | {during * 1e3:.2f} (alone {base * 1e3:.2f}) "
                f"| {during / base:.2f}x | {steps} | {stall:.3f} |"
            )
        target = rows[3][2] / memcpy_reused
        print(f"\nthread-mode stall / memcpy.reused = {target:.2f} (target <= 1.2)")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
