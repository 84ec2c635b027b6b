"""CRC-32 (MindSpore's crc_num = zlib.crc32) throughput: every backend, threads, sources, sinks.

    .venv/bin/python benchmarks/bench_crc.py [--size-mib 1024] [--repeat 5] [--dir DIR]

Prints GB/s (1 GB = 1e9 B) as the median of ``--repeat`` runs with the min-max spread, all
cases in one process on the same buffer (warm: every page touched before timing):

* one call of each installed backend: ``zlib.crc32``, ISA-L (``isal.isal_zlib.crc32``),
  zlib-ng (``zlib_ng.zlib_ng.crc32``);
* ``crc32_parallel`` (split across threads, parts joined with crc32_combine) per backend;
* ``crc32_source`` over the same bytes in a file (page cache, os.preadv) with 1 and 2 threads;
* ``CrcSink`` passing 16 MiB writes to a null sink;
* ratios to ``zlib.crc32`` and to a plain memcpy of the buffer (the memory-speed bound).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import zlib

MIB = 1 << 20


def timed(fn, repeat: int) -> list[float]:
    fn()  # warm
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", default=None, help="directory for the temp file (crc32_source)")
    args = ap.parse_args(argv)

    import numpy as np

    from mindckpt.codecs import crc
    from mindckpt.codecs._source import FdSource

    size = args.size_mib * MIB
    data = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8)
    mv = memoryview(data)
    ref = zlib.crc32(mv)
    backends = crc.available_backends()
    try:
        ncpu = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        ncpu = os.cpu_count() or 1
    load = " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "?"
    print(f"# bench_crc  size={args.size_mib} MiB  repeat={args.repeat}  cpus={ncpu}  loadavg={load}")
    print(f"# python {sys.version.split()[0]}  backends: {', '.join(backends)}  default: {crc.BACKEND}")
    versions = []
    for mod in ("isal", "zlib_ng"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except (ImportError, AttributeError):
            pass
    print(f"# zlib {zlib.ZLIB_RUNTIME_VERSION}  {'  '.join(versions)}\n")

    rows: list[tuple[str, list[float]]] = []

    def case(label: str, fn) -> None:
        got = fn()
        if got != ref:
            raise SystemExit(f"{label}: CRC {got:#x} != zlib {ref:#x}")
        rows.append((label, timed(fn, args.repeat)))
        med = statistics.median(rows[-1][1])
        print(f"  measured {label}: {size / med / 1e9:.2f} GB/s", file=sys.stderr, flush=True)

    dst = np.empty_like(data)
    rows.append(("memcpy (numpy copyto), bound", timed(lambda: np.copyto(dst, data), args.repeat)))
    dst = None  # free it before the CRC cases
    for name, (fn, _) in backends.items():
        case(f"{name} crc32, 1 thread", lambda fn=fn: fn(mv, 0))
    for name in backends:
        for t in sorted({2, 4, ncpu}):
            case(f"{name} crc32_parallel, {t} threads",
                 lambda name=name, t=t: crc.crc32_parallel(mv, threads=t, backend=name))

    class Null:
        def write(self, b):
            return len(b)

    def through_sink() -> int:
        s = crc.CrcSink(Null())
        for o in range(0, size, 16 * MIB):
            s.write(mv[o : o + 16 * MIB])
        return s.crc

    case(f"CrcSink ({crc.BACKEND}), 16 MiB writes", through_sink)

    fd_path = tempfile.mkstemp(prefix="bench_crc_", dir=args.dir)
    os.close(fd_path[0])
    try:
        with open(fd_path[1], "wb") as f:
            f.write(mv)
        fd = os.open(fd_path[1], os.O_RDONLY)
        try:
            src = FdSource(fd)
            for t in sorted({1, 2, ncpu}):
                case(f"crc32_source ({crc.BACKEND}) of a page-cached file, {t} threads",
                     lambda t=t: crc.crc32_source(src, threads=t))
        finally:
            os.close(fd)
    finally:
        os.unlink(fd_path[1])

    base = statistics.median(next(r for lab, r in rows if lab.startswith("zlib crc32,")))
    bound = statistics.median(rows[0][1])
    print(f"## CRC-32 of {args.size_mib} MiB (GB/s: median, min-max over {args.repeat} runs)\n")
    print("| case | GB/s median | GB/s min-max | x zlib.crc32 | x memcpy |")
    print("|---|---|---|---|---|")
    for label, ts in rows:
        med = statistics.median(ts)
        print(f"| {label} | {size / med / 1e9:.2f} | {size / max(ts) / 1e9:.2f}-"
              f"{size / min(ts) / 1e9:.2f} | {base / med:.2f} | {bound / med:.2f} |")


if __name__ == "__main__":
    main()
