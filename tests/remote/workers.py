"""Child-process bodies of the fault tests (run through a forkserver that has these imported)."""

from __future__ import annotations

from typing import Any

MiB = 1 << 20


def pattern(n: int, seed: int = 0) -> bytes:
    block = bytes((i * 7 + seed * 31) & 0xFF for i in range(4096))
    return (block * (n // 4096 + 1))[:n]


def s3_store(endpoint: str, **kw: Any) -> Any:
    import s3fs

    from mindckpt.storage.fsspec import FsspecStore

    fs = s3fs.S3FileSystem(skip_instance_cache=True, endpoint_url=endpoint, key="testing",
                           secret="testing", client_kwargs={"region_name": "us-east-1"})
    return FsspecStore(fs, **kw)


def save_forever(endpoint: str, key: str, size: int, base: int, conn: Any) -> None:
    """Save ``key`` again and again (seeds base, base + 1, ...), streamed in 1 MiB writes,
    until killed; send each seed once its save returned."""
    store = s3_store(endpoint, part_size=5 * MiB, max_concurrency=2)
    store.exists(key)  # connect before saying ready
    conn.send("ready")
    seed = base - 1
    while True:
        seed += 1
        data = pattern(size, seed)
        with store.open_write(key) as w:
            for i in range(0, size, MiB):
                w.write(data[i:i + MiB])
        conn.send(seed)


def checkpoint_forever(endpoint: str, url: str, conn: Any) -> None:
    """``mindckpt.save_checkpoint`` to ``url`` again and again, until killed."""
    import os

    import numpy as np

    import mindckpt

    os.environ["AWS_ENDPOINT_URL"] = endpoint
    rng = np.random.default_rng(0)
    conn.send("ready")
    step = 0
    while True:
        step += 1
        params = {f"w{i}": np.full((512, 1024), step, np.float32) for i in range(6)}
        params["noise"] = rng.standard_normal(1000).astype(np.float32)
        mindckpt.save_checkpoint(params, url)
        conn.send(step)
