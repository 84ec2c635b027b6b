"""CRC-32 of checkpoint bytes, at memory speed.

MindSpore's ``crc_num`` is zlib's CRC-32 (polynomial 0x04C11DB7, reflected, init and final
xor 0xFFFFFFFF): ``crc32(data)`` here equals ``zlib.crc32(data)`` for every input, whatever
backend computes it. Backends, fastest first (benchmarks/bench_crc.py, 1 GiB, one thread):

* ``zlib-ng`` (package ``zlib-ng``, ``zlib_ng.zlib_ng.crc32``): ~24 GB/s on this machine;
* ``isal`` (package ``isal``, Intel ISA-L, ``isal.isal_zlib.crc32``): ~18 GB/s;
* ``zlib`` (the standard library): ~4 GB/s, always there.

The first one installed is used (``BACKEND`` names it); all three release the GIL, so
:func:`crc32_parallel` splits a large buffer across threads and joins the parts with
:func:`crc32_combine` (the backend's, or zlib's GF(2) matrix method written out below).
:class:`CrcSink` and :class:`CrcSource` CRC what passes through a sink or a sequential
stream; :func:`crc32_source` CRCs a region of a positional byte source (``size``,
``readinto(mv, offset)``) without holding it in memory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mindckpt.codecs._source import PositionalSource, read_full

__all__ = [
    "BACKEND",
    "TRAILER_MAGIC",
    "TRAILER_SIZE",
    "crc32",
    "crc32_combine",
    "crc32_parallel",
    "crc32_source",
    "CrcSink",
    "CrcSource",
    "available_backends",
]

POLY = 0xEDB88320  # reflected 0x04C11DB7
# MindSpore's CRC trailer after a .ckpt body: b"crc_num" + the CRC as 10 big-endian bytes
TRAILER_MAGIC = b"crc_num"
TRAILER_SIZE = len(TRAILER_MAGIC) + 10
PARALLEL_MIN = 16 << 20  # below this, one call beats starting threads
SOURCE_CHUNK = 8 << 20  # bytes per read when CRCing a source region

Crc32 = Callable[[Any, int], int]
Combine = Callable[[int, int, int], int]


# --------------------------------------------------------------------------------------------
# combination: CRC(A || B) from CRC(A), CRC(B) and len(B), as zlib's crc32_combine


def _gf2_times(mat: list[int], vec: int) -> int:
    s = 0
    i = 0
    while vec:
        if vec & 1:
            s ^= mat[i]
        vec >>= 1
        i += 1
    return s


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


_ZERO_OPS: list[list[int]] = []  # [k]: the operator that feeds 2**k zero bytes to a CRC
_OPS_LOCK = threading.Lock()


def _zeros_op(k: int) -> list[int]:
    if k >= len(_ZERO_OPS):
        with _OPS_LOCK:
            if not _ZERO_OPS:
                op = [POLY] + [1 << n for n in range(31)]  # one zero bit
                for _ in range(3):
                    op = _gf2_square(op)  # 2, 4, 8 zero bits: one zero byte
                _ZERO_OPS.append(op)
            while len(_ZERO_OPS) <= k:
                _ZERO_OPS.append(_gf2_square(_ZERO_OPS[-1]))
    return _ZERO_OPS[k]


def crc32_combine_py(crc1: int, crc2: int, len2: int) -> int:
    """zlib's ``crc32_combine`` by the GF(2) matrix method (operators cached per power of 2)."""
    if len2 < 0:
        raise ValueError(f"len2 must be >= 0, got {len2}")
    crc1 &= 0xFFFFFFFF
    k = 0
    while len2:
        if len2 & 1:
            crc1 = _gf2_times(_zeros_op(k), crc1)
        len2 >>= 1
        k += 1
    return crc1 ^ (crc2 & 0xFFFFFFFF)


# --------------------------------------------------------------------------------------------
# backends


def available_backends() -> dict[str, tuple[Crc32, Combine]]:
    """``{name: (crc32, crc32_combine)}`` for every installed backend, fastest first."""
    import zlib

    found: dict[str, tuple[Crc32, Combine]] = {}
    try:
        from zlib_ng import zlib_ng

        found["zlib-ng"] = (zlib_ng.crc32, zlib_ng.crc32_combine)
    except ImportError:
        pass
    try:
        from isal import isal_zlib

        found["isal"] = (isal_zlib.crc32, isal_zlib.crc32_combine)
    except ImportError:
        pass
    found["zlib"] = (zlib.crc32, crc32_combine_py)
    return found


BACKEND, (_crc32, _combine) = next(iter(available_backends().items()))


def crc32(data: Any, value: int = 0) -> int:
    """zlib's CRC-32 of ``data`` (any contiguous buffer), continuing from ``value``."""
    return _crc32(data, value)


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC of A || B from ``crc1`` = CRC(A), ``crc2`` = CRC(B) and ``len2`` = len(B)."""
    return _combine(crc1, crc2, len2)


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def default_threads() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(default_threads(), thread_name_prefix="mindckpt-crc")
        return _POOL


def _byte_view(data: Any) -> memoryview:
    mv = data if isinstance(data, memoryview) else memoryview(data)
    if mv.format != "B" or mv.ndim != 1:
        if not mv.contiguous:
            raise TypeError("crc32 needs a contiguous buffer")
        mv = mv.cast("B")
    return mv


def _join(value: int, parts: list[tuple[int, int]]) -> int:
    """CRC continuing from ``value`` over parts given as (crc of part from 0, length)."""
    crc = value & 0xFFFFFFFF
    for c, n in parts:
        crc = _combine(crc, c, n)
    return crc


def crc32_parallel(
    data: Any, value: int = 0, *, threads: int | None = None, backend: str | None = None
) -> int:
    """``crc32(data, value)``, the buffer split across ``threads`` threads and recombined.

    Buffers under 16 MiB (or ``threads=1``) take one call. Equals ``zlib.crc32(data, value)``.
    ``backend`` (a key of :func:`available_backends`) overrides ``BACKEND``, for benchmarks.
    """
    fn, combine = _crc32, _combine
    if backend is not None:
        found = available_backends()
        if backend not in found:
            raise ValueError(f"CRC backend {backend!r} is not installed; installed: {sorted(found)}")
        fn, combine = found[backend]
    mv = _byte_view(data)
    n = len(mv)
    t = default_threads() if threads is None else threads
    if t < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if t == 1 or n < PARALLEL_MIN:
        return fn(mv, value)
    step = -(-n // t)
    pieces = [mv[o : o + step] for o in range(0, n, step)]
    futs = [_pool().submit(fn, p, 0) for p in pieces[1:]]
    crc = fn(pieces[0], value)
    for f, p in zip(futs, pieces[1:], strict=True):
        crc = combine(crc, f.result(), len(p))
    return crc


def _crc_region(src: PositionalSource, offset: int, length: int, chunk: int) -> tuple[int, int]:
    buf = bytearray(min(chunk, max(length, 1)))
    mv = memoryview(buf)
    crc = 0
    done = 0
    while done < length:
        k = read_full(src, mv[: min(len(mv), length - done)], offset + done)
        if not k:
            break
        crc = _crc32(mv[:k], crc)
        done += k
    return crc, done


def crc32_source(
    src: PositionalSource,
    offset: int = 0,
    length: int | None = None,
    value: int = 0,
    *,
    threads: int = 1,
    chunk: int = SOURCE_CHUNK,
) -> int:
    """CRC-32 of ``length`` bytes of ``src`` from ``offset`` (default: to the end).

    Reads ``chunk`` bytes at a time into one reused buffer (per thread); ``threads`` > 1
    splits the region and combines the parts. Raises EOFError if the region runs past
    ``src.size`` or the source ends early while it is read.
    """
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    if length is not None and length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    end = src.size if length is None else offset + length
    if max(offset, end) > src.size:
        raise EOFError(
            f"the region {offset}..{end} to checksum runs past the end of the source "
            f"({src.size} bytes)"
        )
    total = max(0, end - offset)
    t = max(1, threads)
    if t == 1 or total < PARALLEL_MIN:
        spans = [(offset, total)]
    else:
        step = -(-total // t)
        spans = [(o, min(step, end - o)) for o in range(offset, end, step)]
    if len(spans) == 1:
        results = [_crc_region(src, spans[0][0], spans[0][1], chunk)]
    else:
        futs = [_pool().submit(_crc_region, src, o, n, chunk) for o, n in spans]
        results = [f.result() for f in futs]
    for (o, n), (_, got) in zip(spans, results, strict=True):
        if got != n:
            raise EOFError(
                f"the source ended at byte {o + got}, before the end of the region "
                f"{offset}..{end} being checksummed"
            )
    return _join(value, [(c, n) for (_, n), (c, _) in zip(spans, results, strict=True)])


class CrcSink:
    """A sink that CRCs what passes through it to ``raw`` (``raw.write(b) -> int | None``).

    ``crc`` is zlib's CRC-32 of the bytes ``raw`` accepted so far (a short write counts only
    what was written), ``nbytes`` their number. ``flush``/``close`` go to ``raw`` if it has them.
    """

    def __init__(self, raw: Any, value: int = 0):
        self.raw = raw
        self.crc = value & 0xFFFFFFFF
        self.nbytes = 0

    def write(self, data: Any) -> int:
        mv = _byte_view(data)
        k = self.raw.write(mv)
        k = len(mv) if k is None else k
        self.crc = _crc32(mv[:k], self.crc)
        self.nbytes += k
        return k

    def flush(self) -> None:
        f = getattr(self.raw, "flush", None)
        if f is not None:
            f()

    def close(self) -> None:
        f = getattr(self.raw, "close", None)
        if f is not None:
            f()


class CrcSource:
    """A sequential stream (``raw.readinto(b) -> int``) that CRCs what is read through it.

    ``crc``/``nbytes`` cover every byte handed out so far; ``size_hint`` is passed on.
    """

    def __init__(self, raw: Any, value: int = 0):
        self.raw = raw
        self.crc = value & 0xFFFFFFFF
        self.nbytes = 0
        self.size_hint = getattr(raw, "size_hint", 0)

    def readinto(self, b: Any) -> int:
        mv = _byte_view(b)
        k = self.raw.readinto(mv) or 0
        self.crc = _crc32(mv[:k], self.crc)
        self.nbytes += k
        return k

    def read(self, n: int) -> bytes:
        buf = bytearray(n)
        k = self.readinto(buf)
        del buf[k:]
        return bytes(buf)

    def close(self) -> None:
        f = getattr(self.raw, "close", None)
        if f is not None:
            f()
