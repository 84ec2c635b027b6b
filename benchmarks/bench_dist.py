"""Distributed save and load on gloo (CPU): mindckpt against torch.distributed.checkpoint.

    .venv/bin/python benchmarks/bench_dist.py [--mib 1024] [--worlds 1,2,4] [--repeats 3]
                                              [--dir DIR] [--no-fsync] [--skip-all-writers]

Model: 8 float32 tensors of ``--mib``/8 MiB each, DTensors on a 1-D mesh of W ranks, half
``Shard(0)``, half ``Shard(1)``.  Loads are real reshards: the target swaps the two
placements, so every rank needs slices that other ranks saved.

Rows per world size W (ranks forked, ``file://`` rendezvous; each row's time is the maximum
over ranks, between barriers; medians over ``--repeats``, spread = min..max):

* ``mindckpt.integrated[rank0]``: ``save_distributed(..., writer_rank=0)`` (one full file);
* ``mindckpt.integrated[all]``: every rank writes its full copy (MindSpore's behaviour);
* ``mindckpt.sliced``: ``integrated_save=False`` (per-rank files + strategy + index + commit);
* ``dcp.save``: ``torch.distributed.checkpoint.save`` of the same DTensors;
* ``mindckpt.load``: ``load_distributed`` of the sliced checkpoint into the swapped layout;
* ``dcp.load``: ``dcp.load`` of the DCP checkpoint into the same swapped layout.

Columns: MiB written and read per rank (max; written = the bytes of the files the rank wrote,
read = ``rchar`` growth of the rank during the op), peak RSS growth per rank (max, sampled
every ms from ``/proc/self/statm``).  Ratios: each mindckpt row over its DCP peer (< 1: faster).
Both libraries fsync by default (DCP's ``sync_files=True``); ``--no-fsync`` turns it off for
both (page-cache numbers).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import tempfile
import threading
import time
import traceback
import uuid
from datetime import timedelta
from typing import Any

MIB = 1 << 20
_PAGE = os.sysconf("SC_PAGE_SIZE")


class Peak:
    """Peak RSS growth (bytes) of this process while active, sampled every millisecond."""

    def __init__(self) -> None:
        self.base = self.peak = 0
        self._stop = threading.Event()
        self._t: threading.Thread | None = None

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE

    def __enter__(self) -> Peak:
        self.base = self.peak = self.rss()
        self._stop.clear()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.001)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._t is not None:
            self._t.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth(self) -> int:
        return max(0, self.peak - self.base)


def _rchar() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    return 0


def _tree_bytes(paths: list[str]) -> int:
    return sum(os.path.getsize(p) for p in paths if os.path.isfile(p))


def _state(world: int, mib: int, swap: bool, zeros: bool = False) -> dict[str, Any]:
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Shard

    mesh = init_device_mesh("cpu", (world,))
    rank = torch.distributed.get_rank()
    n = mib * MIB // 4 // 8  # elements per tensor
    side = 1 << ((n.bit_length() - 1) // 2)
    rows, cols = side, n // side
    g = torch.Generator().manual_seed(1000 + rank)
    out = {}
    for i in range(8):
        dim = (i % 2) ^ (1 if swap else 0)
        shape = [rows, cols]
        shape[dim] //= world
        local = torch.zeros(shape) if zeros else torch.rand(shape, generator=g)
        out[f"layer{i}.weight"] = DTensor.from_local(local, mesh, [Shard(dim)], run_check=False,
                                                     shape=(rows, cols), stride=(cols, 1))
    return out


def _time(fn: Any) -> tuple[float, int, int, Any]:
    import torch.distributed as dist

    dist.barrier()
    r0 = _rchar()
    with Peak() as peak:
        t0 = time.perf_counter()
        out = fn()
        dist.barrier()
        dt = time.perf_counter() - t0
    return dt, peak.growth, _rchar() - r0, out


def _rank_main(rank: int, world: int, args: Any, root: str) -> dict[str, list[tuple]]:
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter

    from mindckpt.parallel.load import load_distributed
    from mindckpt.parallel.save import save_distributed
    from mindckpt.storage import set_default_durable

    set_default_durable(not args.no_fsync)
    sd = _state(world, args.mib, swap=False)
    rows: dict[str, list[tuple]] = {}

    def add(name: str, res: tuple, written: int) -> None:
        dt, peak, read, _out = res
        rows.setdefault(name, []).append((dt, written, read, peak))

    def cleanup(path: str) -> None:
        dist.barrier()
        if rank == 0:
            shutil.rmtree(path, ignore_errors=True)
            if os.path.isfile(path):
                os.remove(path)
        dist.barrier()

    for i in range(args.repeats):
        last = i == args.repeats - 1
        p = os.path.join(root, f"int{i}")
        res = _time(lambda p=p: save_distributed(sd, p, writer_rank=0, format="safetensors"))
        add("mindckpt.integrated[rank0]", res, res[3].bytes_written)
        cleanup(p + ".safetensors")
        if not args.skip_all_writers:
            p = os.path.join(root, f"all{i}", f"rank_{rank}", "net")
            res = _time(lambda p=p: save_distributed(sd, p, format="safetensors"))
            add("mindckpt.integrated[all]", res, res[3].bytes_written)
            cleanup(os.path.join(root, f"all{i}"))
        p = os.path.join(root, f"sl{i}")
        res = _time(lambda p=p: save_distributed(sd, p, integrated_save=False,
                                                 format="safetensors"))
        add("mindckpt.sliced", res, res[3].bytes_written)
        if not last:
            cleanup(p)
        p = os.path.join(root, f"dcp{i}")
        writer = FileSystemWriter(p, sync_files=not args.no_fsync)
        res = _time(lambda w=writer: dcp.save(sd, storage_writer=w))
        mine = [os.path.join(p, f) for f in os.listdir(p) if f.startswith(f"__{rank}_")]
        if rank == 0:
            mine.append(os.path.join(p, ".metadata"))
        add("dcp.save", res, _tree_bytes(mine))
        if not last:
            cleanup(p)
    target = _state(world, args.mib, swap=True, zeros=True)
    for _i in range(args.repeats):
        res = _time(lambda: load_distributed(os.path.join(root, f"sl{args.repeats - 1}"),
                                             target))
        add("mindckpt.load", res, 0)
        target2 = _state(world, args.mib, swap=True, zeros=True)
        reader = FileSystemReader(os.path.join(root, f"dcp{args.repeats - 1}"))
        res = _time(lambda t=target2, r=reader: dcp.load(t, storage_reader=r))
        add("dcp.load", res, 0)
        for k in target:  # both loaded the same values
            if not torch.equal(target[k].to_local(), target2[k].to_local()):
                raise AssertionError(f"{k}: mindckpt and DCP loaded different values")
        del target2
    ref = _state(world, args.mib, swap=False)
    check = _state(world, args.mib, swap=False, zeros=True)
    load_distributed(os.path.join(root, f"sl{args.repeats - 1}"), check)
    for k in ref:
        if not torch.equal(ref[k].to_local(), check[k].to_local()):
            raise AssertionError(f"{k}: the round trip changed the values")
    return rows


def _child(rank: int, world: int, args: Any, root: str, init: str, q: Any) -> None:
    try:
        import torch
        import torch.distributed as dist

        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank,
                                world_size=world, timeout=timedelta(seconds=1800))
        q.put((rank, True, _rank_main(rank, world, args, root)))
        dist.destroy_process_group()
    except BaseException:  # noqa: BLE001
        q.put((rank, False, traceback.format_exc()))
    finally:
        q.close()
        q.join_thread()
        os._exit(0)


def run_world(world: int, args: Any, base: str) -> list[dict[str, list[tuple]]]:
    ctx = mp.get_context("fork")
    root = os.path.join(base, f"w{world}")
    os.makedirs(root, exist_ok=True)
    init = os.path.join(base, f"init-{uuid.uuid4().hex}")
    q = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(r, world, args, root, init, q))
             for r in range(world)]
    for p in procs:
        p.start()
    out: dict[int, Any] = {}
    for _ in range(world):
        rank, ok, res = q.get()
        if not ok:
            for p in procs:
                p.kill()
            raise RuntimeError(f"rank {rank} failed:\n{res}")
        out[rank] = res
    for p in procs:
        p.join()
    shutil.rmtree(root, ignore_errors=True)
    return [out[r] for r in range(world)]


def _summary(per_rank: list[dict[str, list[tuple]]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in per_rank[0]:
        reps = len(per_rank[0][name])
        times = [max(pr[name][i][0] for pr in per_rank) for i in range(reps)]
        out[name] = {
            "time": statistics.median(times), "tmin": min(times), "tmax": max(times),
            "written": max(max(x[1] for x in pr[name]) for pr in per_rank) / MIB,
            "read": max(statistics.median(x[2] for x in pr[name]) for pr in per_rank) / MIB,
            "peak": max(max(x[3] for x in pr[name]) for pr in per_rank) / MIB,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--worlds", default="1,2,4")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--no-fsync", action="store_true")
    ap.add_argument("--skip-all-writers", action="store_true")
    args = ap.parse_args()
    import torch  # noqa: F401 - warm the parent before forking (DTensor imports torch._dynamo)
    import torch._dynamo  # noqa: F401
    import torch.distributed.checkpoint  # noqa: F401
    import torch.distributed.tensor  # noqa: F401

    import mindckpt.parallel.load  # noqa: F401
    import mindckpt.parallel.save  # noqa: F401

    base = tempfile.mkdtemp(prefix="bench_dist_", dir=args.dir)
    print(f"# bench_dist: {args.mib} MiB float32 (8 DTensors), gloo CPU, repeats={args.repeats}"
          f", fsync={'off' if args.no_fsync else 'on'}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}")
    peers = {"mindckpt.integrated[rank0]": "dcp.save", "mindckpt.integrated[all]": "dcp.save",
             "mindckpt.sliced": "dcp.save", "mindckpt.load": "dcp.load"}
    try:
        for w in [int(x) for x in args.worlds.split(",")]:
            s = _summary(run_world(w, args, base))
            print(f"\n## W={w}")
            print(f"{'op':28} {'time s (min..max)':>22} {'MiB wr/rank':>12} "
                  f"{'MiB rd/rank':>12} {'peak MiB':>9} {'x DCP':>6}")
            for name, row in s.items():
                peer = peers.get(name)
                ratio = f"{row['time'] / s[peer]['time']:.2f}" if peer in s else ""
                print(f"{name:28} {row['time']:8.3f} ({row['tmin']:.3f}..{row['tmax']:.3f})"
                      f" {row['written']:12.1f} {row['read']:12.1f} {row['peak']:9.1f} "
                      f"{ratio:>6}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
