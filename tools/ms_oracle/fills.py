"""Deterministic array contents shared by the MindSpore oracle worker and the tests.

Pure numpy (no MindSpore, no ml_dtypes) so that the worker (MindSpore venv) and the test
process (library venv) compute bit-identical data from the same JSON description.

A *fill* is a JSON object:

* ``{"kind": "arange"}``: element ``i`` (C order) is ``i mod 256`` for float types (exactly
  representable in every float type incl. bfloat16), ``i`` wrapped to the integer width for
  integer types, and ``i & 1`` for Bool.
* ``{"kind": "hash", "seed": S}``: pseudo-random bytes ``((k * 0x9E3779B1 + S * 0x85EBCA77)
  mod 2**32) >> 24`` for byte index ``k``; for float types the highest exponent bit of every
  element is cleared (so there is never an Inf/NaN, whose payload MindSpore's bfloat16 cast
  would not preserve); for Bool every byte is ``& 1``.
* ``{"kind": "const", "byte": B}``: every byte equals ``B`` (Bool: ``B & 1``).

``fill_bytes(dtype_name, shape, fill)`` returns a 1-D ``numpy.uint8`` array of the raw
little-endian C-order content. ``dtype_name`` is a MindSpore tensor_type string.
"""
from __future__ import annotations

import math

import numpy as np

# MindSpore tensor_type name -> (storage numpy dtype, itemsize, kind)
DTYPES = {
    "Float16": ("<f2", 2, "f"),
    "Float32": ("<f4", 4, "f"),
    "Float64": ("<f8", 8, "f"),
    "BFloat16": ("<u2", 2, "bf"),  # raw bits, high half of float32
    "Int8": ("i1", 1, "i"),
    "Int16": ("<i2", 2, "i"),
    "Int32": ("<i4", 4, "i"),
    "Int64": ("<i8", 8, "i"),
    "UInt8": ("u1", 1, "u"),
    "UInt16": ("<u2", 2, "u"),
    "UInt32": ("<u4", 4, "u"),
    "UInt64": ("<u8", 8, "u"),
    "Bool": ("u1", 1, "b"),
}

_CHUNK = 1 << 24  # elements/bytes generated per step, bounds temporary memory


def nelems(shape) -> int:
    return int(math.prod(int(d) for d in shape))


def _arange(dtype_name: str, n: int) -> np.ndarray:
    np_dt, size, kind = DTYPES[dtype_name]
    out = np.empty(n * size, dtype=np.uint8)
    view = out.view(np_dt)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        i = np.arange(start, stop, dtype=np.uint64)
        if kind == "f":
            view[start:stop] = (i % 256).astype(np_dt)
        elif kind == "bf":
            f = (i % 256).astype("<f4")
            view[start:stop] = (f.view("<u4") >> 16).astype("<u2")
        elif kind == "b":
            view[start:stop] = (i & 1).astype("u1")
        else:
            # wrap to width: take the low bytes of the uint64 counter
            view[start:stop] = (i & np.uint64((1 << (8 * size)) - 1)).astype(
                np_dt.replace("i", "u"))
    return out


def _hash(dtype_name: str, n: int, seed: int) -> np.ndarray:
    np_dt, size, kind = DTYPES[dtype_name]
    nbytes = n * size
    out = np.empty(nbytes, dtype=np.uint8)
    off = np.uint64((seed * 0x85EBCA77) & 0xFFFFFFFF)
    for start in range(0, nbytes, _CHUNK):
        stop = min(nbytes, start + _CHUNK)
        k = np.arange(start, stop, dtype=np.uint64)
        h = (k * np.uint64(0x9E3779B1) + off) & np.uint64(0xFFFFFFFF)
        out[start:stop] = (h >> np.uint64(24)).astype(np.uint8)
    if kind == "b":
        out &= 1
    elif kind in ("f", "bf"):
        # byte index of the most significant byte of each element; clear bit 6 there
        # (highest exponent bit for f16/bf16/f32/f64)
        out[size - 1::size] &= 0xBF
    return out


def fill_bytes(dtype_name: str, shape, fill: dict) -> np.ndarray:
    if dtype_name not in DTYPES:
        raise ValueError(f"fill: unsupported dtype {dtype_name!r}")
    n = nelems(shape)
    kind = fill.get("kind")
    if kind == "arange":
        return _arange(dtype_name, n)
    if kind == "hash":
        return _hash(dtype_name, n, int(fill.get("seed", 0)))
    if kind == "const":
        b = int(fill["byte"]) & 0xFF
        if DTYPES[dtype_name][2] == "b":
            b &= 1
        return np.full(n * DTYPES[dtype_name][1], b, dtype=np.uint8)
    raise ValueError(f"fill: unknown kind {kind!r}")
