"""Run a function on N gloo ranks: ``fork`` start method and a ``file://`` rendezvous.

``run_ranks(fn, world, tmp_path, *args)`` forks ``world`` processes; each sets one torch
thread, joins a fresh gloo group (its own init file) and returns ``fn(rank, world, *args)``
through a pipe.  The parent gets the list of results in rank order, or an AssertionError with
every failing rank's traceback; a rank that does not finish within ``timeout`` seconds fails
the run (all ranks are then killed), so a hang never blocks the suite.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
import uuid
from datetime import timedelta
from typing import Any
from collections.abc import Callable

import numpy as np

# Import in the parent what every rank needs, so that the forked ranks start warm: DTensor's
# first operation imports torch._dynamo (3 s per process on 2 cores otherwise).
try:
    import torch
    import torch._dynamo  # noqa: F401
    import torch.distributed.device_mesh  # noqa: F401
    import torch.distributed.tensor  # noqa: F401
except ImportError:  # torch without distributed: the tests skip
    torch = None  # type: ignore[assignment]
import mindckpt.parallel.load  # noqa: E402,F401
import mindckpt.parallel.save  # noqa: E402,F401
import mindckpt.storage.urls  # noqa: E402,F401

_ctx = mp.get_context("fork")


def _child(fn: Callable[..., Any], rank: int, world: int, init: str, backend: str,
           args: tuple, q: Any) -> None:
    try:
        import torch
        import torch.distributed as dist

        torch.set_num_threads(1)
        dist.init_process_group(backend, init_method=f"file://{init}", rank=rank,
                                world_size=world, timeout=timedelta(seconds=60))
        try:
            out = fn(rank, world, *args)
        finally:
            try:
                dist.destroy_process_group()
            except Exception:  # noqa: BLE001
                pass
        q.put((rank, True, out))
    except BaseException:  # noqa: BLE001 - the parent reports it
        q.put((rank, False, traceback.format_exc()))
    finally:
        q.close()
        q.join_thread()  # the result is in the pipe before the process ends
        os._exit(0)


def run_ranks(fn: Callable[..., Any], world: int, tmp_path: Any, *args: Any,
              timeout: float = 90, backend: str = "gloo", dead: tuple[int, ...] = ()) -> list[Any]:
    """Results in rank order (``None`` for the ``dead`` ranks, which are expected to die)."""
    init = os.path.join(str(tmp_path), f"init-{uuid.uuid4().hex}")
    q = _ctx.Queue()
    procs = [_ctx.Process(target=_child, args=(fn, r, world, init, backend, args, q))
             for r in range(world)]
    for p in procs:
        p.start()
    results: dict[int, Any] = {}
    errors: dict[int, str] = {}
    try:
        for _ in range(world - len(dead)):
            rank, ok, out = q.get(timeout=timeout)
            (results if ok else errors)[rank] = out
    except Exception as e:  # queue.Empty: a rank hung or died
        missing = sorted(set(range(world)) - set(results) - set(errors))
        errors.setdefault(-1, f"ranks {missing} did not finish within {timeout} s ({e!r})")
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
    if errors:
        text = "\n".join(f"--- rank {r} ---\n{tb}" for r, tb in sorted(errors.items()))
        raise AssertionError(f"{len(errors)} rank(s) failed:\n{text}")
    return [results.get(r) for r in range(world)]


def full_tensor(name: str, shape: tuple[int, ...], dtype: str = "float32") -> Any:
    """The seeded ground truth of parameter ``name`` (the same in every process)."""
    import torch

    seed = int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "little") % (2 ** 31)
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(shape, generator=g) * 10
    return t.to(getattr(torch, dtype))


def np_of(t: Any) -> np.ndarray:
    from mindckpt.adapters.torch import torch_to_numpy

    return np.array(torch_to_numpy(t))
