"""Saving to and loading from S3 through mindckpt's store vs s3fs's own transfer of the same bytes.

    .venv/bin/python benchmarks/bench_remote.py [--mib 512] [--repeats 3] [--endpoint URL]

Server: moto's S3 server on loopback (started here unless ``--endpoint`` is given; credentials
from the environment, dummy ones for the local server).  Payload: ``--mib`` MiB of random bytes.

Rows (median and spread over the repeats, MiB/s; ratio = row / its s3fs peer):

* ``s3fs.pipe_file``: s3fs's own upload of the bytes (its defaults: 50 MiB parts, 10 at a time).
* ``store.save``: ``FsspecStore.open_write`` fed 4 MiB writes, as a checkpoint writer streams
  (default part size and concurrency), published at completion.
* ``s3fs.cat_file``: s3fs's own download (50 MiB ranges, 10 at a time) into one ``bytes``.
* ``store.load``: ``FsspecStore.open_read(...).readinto`` of the whole object into one buffer.
* ``mindckpt.save_checkpoint`` / ``mindckpt.load_checkpoint`` of a dict of float32 arrays of the
  same size to ``s3://`` (when the library's save path takes URLs).

Peak memory: the largest Python-allocated size (tracemalloc) during each operation, beyond the
payload and the destination buffer themselves (separate runs, so timings are not slowed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any

MIB = 1 << 20
HERE = os.path.dirname(os.path.abspath(__file__))


def _timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _peak(fn: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        fn()
        return int(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--endpoint", default=None, help="an S3 endpoint (default: start moto)")
    ap.add_argument("--part-mib", type=int, default=None)
    ap.add_argument("--concurrency", type=int, default=None)
    ap.add_argument("--read-chunk-mib", type=int, default=None)
    ap.add_argument("--readahead-mib", type=int, default=None)
    args = ap.parse_args()

    server = None
    if args.endpoint is None:
        sys.path.insert(0, os.path.join(HERE, "..", "tests", "remote"))
        from s3server import MotoServer, s3_environ

        server = MotoServer().start()
        os.environ.update(s3_environ(server.endpoint))
    else:
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint
    try:
        run(args)
    finally:
        if server is not None:
            server.stop()


def run(args: argparse.Namespace) -> None:
    import boto3
    import numpy as np
    import s3fs

    from mindckpt.storage.fsspec import FsspecStore
    from mindckpt.storage.urls import resolve

    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    n = args.mib * MIB
    payload = np.random.default_rng(0).integers(0, 255, n, dtype=np.uint8).tobytes()
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    store, _ = resolve(f"s3://{bucket}/x")
    assert isinstance(store, FsspecStore)
    kw: dict[str, int] = {}
    if args.part_mib:
        kw["part_size"] = args.part_mib * MIB
    if args.concurrency:
        kw["max_concurrency"] = args.concurrency
    if args.read_chunk_mib:
        kw["read_chunk"] = args.read_chunk_mib * MIB
    if args.readahead_mib:
        kw["readahead"] = args.readahead_mib * MIB
    if kw:
        store = FsspecStore(store.fs, **kw)
    print(f"payload {args.mib} MiB, part_size {store.part_size // MIB} MiB, max_concurrency "
          f"{store.max_concurrency}, read_chunk {store.read_chunk // MIB} MiB, readahead "
          f"{store.readahead // MIB} MiB, repeats "
          f"{args.repeats}; server {os.environ['AWS_ENDPOINT_URL']}")
    dest = bytearray(n)

    def raw_put() -> None:
        fs.pipe_file(f"{bucket}/raw.bin", payload)

    def store_save() -> None:
        mv = memoryview(payload)
        with store.open_write(f"{bucket}/store.bin") as w:
            for i in range(0, n, 4 * MIB):
                w.write(mv[i:i + 4 * MIB])

    def raw_cat() -> None:
        data = fs.cat_file(f"{bucket}/raw.bin")
        assert len(data) == n

    def store_load() -> None:
        with store.open_read(f"{bucket}/store.bin") as src:
            assert src.readinto(dest, 0) == n

    rows: list[tuple[str, list[float], str | None]] = []
    for name, fn, peer in (("s3fs.pipe_file", raw_put, None),
                           ("store.save", store_save, "s3fs.pipe_file"),
                           ("s3fs.cat_file", raw_cat, None),
                           ("store.load", store_load, "s3fs.cat_file")):
        fn()  # warm: connections, the object to read
        rows.append((name, _timed(fn, args.repeats), peer))
    assert bytes(dest) == payload

    ckpt_rows, ckpt_ops = _checkpoint_rows(bucket, args, payload)
    rows.extend(ckpt_rows)

    medians = {name: statistics.median(t) for name, t, _ in rows}
    print(f"\n{'row':28} {'median s':>9} {'spread s':>9} {'MiB/s':>8} {'ratio':>7}")
    for name, times, peer in rows:
        med = medians[name]
        spread = max(times) - min(times)
        ratio = f"{medians[peer] / med:6.2f}x" if peer in medians else ""
        print(f"{name:28} {med:9.3f} {spread:9.3f} {args.mib / med:8.1f} {ratio:>7}")

    print("\npeak Python memory during the operation (tracemalloc), beyond payload/buffer:")
    for name, fn in (("s3fs.pipe_file", raw_put), ("store.save", store_save),
                     ("s3fs.cat_file", raw_cat), ("store.load", store_load), *ckpt_ops):
        extra = _peak(fn)
        if name in ("s3fs.cat_file", "mindckpt.load_checkpoint"):
            extra -= n  # the returned bytes/arrays are the result, not overhead
        print(f"  {name:26} {extra / MIB:8.1f} MiB")


def _checkpoint_rows(bucket: str, args: argparse.Namespace, payload: bytes) -> tuple[
        list[tuple[str, list[float], str | None]], list[tuple[str, Callable[[], Any]]]]:
    import numpy as np

    import mindckpt

    n_tensors = 64
    per = len(payload) // 4 // n_tensors
    arr = np.frombuffer(payload, dtype=np.float32)
    params = {f"layer{i}.weight": arr[i * per:(i + 1) * per].reshape(-1, 256)
              for i in range(n_tensors)}
    url = f"s3://{bucket}/net.ckpt"
    try:
        mindckpt.save_checkpoint(params, url)
    except Exception as exc:  # the library's save path may not take URLs yet
        print(f"(mindckpt.save_checkpoint to s3:// not run: {type(exc).__name__}: {exc})")
        return [], []
    got = mindckpt.load_checkpoint(url)
    if np.asarray(got["layer3.weight"].asnumpy()).tobytes() != params["layer3.weight"].tobytes():
        raise SystemExit("load_checkpoint from s3:// returned different bytes")
    del got

    def save() -> None:
        mindckpt.save_checkpoint(params, url)

    def load() -> None:
        mindckpt.load_checkpoint(url)

    rows: list[tuple[str, list[float], str | None]] = [
        ("mindckpt.save_checkpoint", _timed(save, args.repeats), "s3fs.pipe_file"),
        ("mindckpt.load_checkpoint", _timed(load, args.repeats), "s3fs.cat_file"),
    ]
    return rows, [("mindckpt.save_checkpoint", save), ("mindckpt.load_checkpoint", load)]


if __name__ == "__main__":
    main()
