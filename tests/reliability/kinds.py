"""The file kinds the reliability tests save and load, with their integrity promise."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

import mindckpt as ms

KEY = bytes(range(16))

#: kind -> (save kwargs, load kwargs, integrity: tampering must be detected)
KINDS = {
    "plain": ({}, {}, False),
    "crc": ({"crc_check": True}, {"crc_check": True}, True),
    "gcm": ({"enc_key": KEY, "enc_mode": "AES-GCM"}, {"dec_key": KEY, "dec_mode": "AES-GCM"}, True),
    "cbc": ({"enc_key": KEY, "enc_mode": "AES-CBC"}, {"dec_key": KEY, "dec_mode": "AES-CBC"}, False),
    "safetensors": ({"format": "safetensors"}, {"format": "safetensors"}, False),
    "safetensors_crc": ({"format": "safetensors", "crc_check": True},
                        {"format": "safetensors", "crc_check": True}, True),
}


def suffix(kind: str) -> str:
    return ".safetensors" if kind.startswith("safetensors") else ".ckpt"


def params(gen: int, n: int = 8, size: int = 1 << 16) -> dict:
    """A checkpoint of generation ``gen``: ``n`` float32 tensors filled with ``gen``, a
    bfloat16-free mix of shapes and an int64 ``gen`` scalar."""
    out = {f"layer{i}.weight": ms.Parameter(ms.Tensor(np.full((size // 64, 64), gen, np.float32)))
           for i in range(n)}
    out["bias"] = ms.Parameter(ms.Tensor(np.full(7, gen, np.float16)))
    out["gen"] = ms.Parameter(ms.Tensor(np.array(gen, np.int64)))
    return out


def generation(loaded: dict, n: int = 8, size: int = 1 << 16) -> int:
    """The generation of a complete checkpoint made by :func:`params`; raise if mixed/partial."""
    want = set(params(0, n, 8))  # names only
    if set(loaded) != want:
        raise AssertionError(f"names {sorted(loaded)[:5]}... are not the saved ones")
    gen = int(loaded["gen"].asnumpy())
    for name, p in loaded.items():
        a = p.asnumpy()
        if name.startswith("layer") and a.shape != (size // 64, 64):
            raise AssertionError(f"{name} has shape {a.shape}")
        if not np.all(a == gen):
            raise AssertionError(f"{name} mixes generations (gen {gen})")
    return gen


@contextmanager
def bounded(seconds: int = 10) -> Iterator[None]:
    """Fail (not hang) one load that takes longer than ``seconds``."""

    def on_alarm(_sig, _frame):
        raise TimeoutError(f"a load took more than {seconds} s: it hangs")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
