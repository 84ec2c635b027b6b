"""Benchmark of mindckpt's encryption codec against the machine's cipher limits.

    .venv/bin/python benchmarks/bench_crypto.py [--size-mib 1024] [--workers N] [--modes AES-GCM,...] [--ops save,load] [--repeat N]

Prints:
1. per-core cipher rates: ``openssl speed -evp ... -bytes 16384`` and the ``cryptography``
   package's ``update_into`` (1 MiB pieces, in place, 1 thread), plus what two threads, the
   one-shot ``AESGCM.encrypt`` and two processes reach (is the GIL released?);
2. EncryptSink / DecryptSource throughput on ``--size-mib`` of data for each mode, each case in
   a fresh subprocess, to a real file in a temp dir (write/read cost included) and to a null
   sink, with peak extra RSS (VmHWM after ``clear_refs`` minus VmRSS before), as ratios to the
   single-core openssl rate and to MindSpore 2.10 (15.4 s save / 9.2 s load of 1 GiB with
   AES-GCM, /work/shared/bench-baseline.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1 << 20
# MindSpore 2.10 seconds per GiB (save, load). Single 1 GiB float32 tensor, one run each, measured
# on this 2-core VM with benchmarks/bench_crypto.py --mindspore (same machine, 2026-11-22). This is
# the *stricter* reference: the 220-tensor model of bench-baseline.md takes 15.4 s / 9.2 s (AES-GCM).
MS_REF = {"AES-GCM": (7.07, 5.70), "AES-CBC": (7.71, 3.50), "SM4-CBC": (35.11, 33.15)}


# ------------------------------------------------------------------------------------------
# cipher limits


def openssl_rate(cipher: str, decrypt: bool = False) -> float | None:
    """Bytes/s for 16 KiB buffers on one core, or None if openssl lacks the cipher."""
    exe = shutil.which("openssl")
    if not exe:
        return None
    cmd = [exe, "speed", "-evp", cipher, "-bytes", "16384", "-seconds", "2"]
    if decrypt:
        cmd.insert(2, "-decrypt")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"^\S+\s+([\d.]+)k\s*$", out.strip().splitlines()[-1] if out.strip() else "")
    return float(m.group(1)) * 1000 if m else None


def _ctx(mode: str, encrypt: bool):
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key, iv = bytes(range(32)), bytes(16)
    if mode == "AES-GCM":
        c = Cipher(algorithms.AES(key), modes.GCM(iv[:12], None if encrypt else bytes(16)))
    elif mode == "AES-CBC":
        c = Cipher(algorithms.AES(key), modes.CBC(iv))
    else:
        c = Cipher(algorithms.SM4(key[:16]), modes.CBC(iv))
    return c.encryptor() if encrypt else c.decryptor()


def update_into_seconds(
    mode: str, encrypt: bool, nbytes: int, buf: bytearray | None = None
) -> float:
    buf = buf if buf is not None else bytearray(nbytes + 32)
    mv = memoryview(buf)
    ctx = _ctx(mode, encrypt)
    t0 = time.perf_counter()
    for o in range(0, nbytes, MIB):
        e = min(o + MIB, nbytes)
        ctx.update_into(mv[o:e], mv[o : e + 15])
    return time.perf_counter() - t0


def _run_all(threads: list[threading.Thread]) -> float:
    """Start the threads together; return the seconds until the last one finished."""
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def threads_rate(mode: str, nthreads: int, nbytes: int) -> float:
    bufs = [bytearray(nbytes + 32) for _ in range(nthreads)]
    for b in bufs:
        update_into_seconds(mode, True, min(nbytes, 4 * MIB), b)  # fault pages in
    ts = [threading.Thread(target=update_into_seconds, args=(mode, True, nbytes, b)) for b in bufs]
    return nthreads * nbytes / _run_all(ts)


def oneshot_rate(nthreads: int, nbytes: int) -> float:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data = [bytes(nbytes) for _ in range(nthreads)]
    a = AESGCM(bytes(32))
    ts = [threading.Thread(target=a.encrypt, args=(bytes(12), d, None)) for d in data]
    return nthreads * nbytes / _run_all(ts)


def _proc_worker(args):
    mode, nbytes = args
    buf = bytearray(nbytes + 32)
    update_into_seconds(mode, True, nbytes, buf)  # fault the pages in
    return update_into_seconds(mode, True, nbytes, buf)


def processes_rate(mode: str, nproc: int, nbytes: int) -> float:
    import multiprocessing as mp

    with mp.get_context("fork").Pool(nproc) as pool:
        pool.map(_proc_worker, [(mode, MIB)] * nproc)  # warm the workers
        # cipher time measured inside each worker (no pickling or start-up in it)
        return nproc * nbytes / max(pool.map(_proc_worker, [(mode, nbytes)] * nproc))


def gil_probe(nbytes: int) -> tuple[int, float]:
    """Main-thread Python loop iterations while another thread runs one big update_into."""
    buf = bytearray(nbytes + 32)
    done = threading.Event()

    def work():
        update_into_seconds("AES-CBC", True, nbytes, buf)
        done.set()

    t = threading.Thread(target=work)
    t0 = time.perf_counter()
    t.start()
    n = 0
    while not done.is_set():
        n += 1
    t.join()
    return n, time.perf_counter() - t0


# ------------------------------------------------------------------------------------------
# one EncryptSink / DecryptSource case, run in a fresh process


def _rss() -> tuple[int, int]:
    vals = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                vals[k] = int(v.split()[0]) * 1024
    return vals["VmRSS"], vals["VmHWM"]


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class _Null:
    def write(self, b):
        return len(b)


def run_case(spec: dict) -> dict:
    import numpy as np

    from mindckpt.codecs.crypto import DecryptSource, EncryptSink

    size = spec["size"]
    key = bytes(range(32)) if spec["mode"] != "SM4-CBC" else bytes(range(16))
    path = spec["path"]
    chunk = spec["chunk"]
    import warnings

    warnings.simplefilter("ignore", UserWarning)
    if spec["op"] == "save":
        data = np.frombuffer(np.random.default_rng(0).bytes(size), np.uint8)
        mv = memoryview(data)
        f = open(path, "wb") if spec["target"] == "file" else None
        raw = f if f is not None else _Null()
        _reset_hwm()
        rss0, _ = _rss()
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        sink = EncryptSink(raw, key, spec["mode"], workers=spec["workers"])
        for o in range(0, size, chunk):
            sink.write(mv[o : o + chunk])
        sink.close()
        if f is not None:
            f.flush()
        dt = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        if f is not None:
            f.close()
    else:
        out = np.ones(size + (1 << 20), np.uint8)  # pre-faulted destination, not counted
        f = open(path, "rb")
        _reset_hwm()
        rss0, _ = _rss()
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        src = DecryptSource(f, key, spec["mode"], path=path, workers=spec["workers"])
        got = 0
        omv = memoryview(out)
        while True:
            k = src.readinto(omv[got : got + chunk])
            if not k:
                break
            got += k
        src.close()
        dt = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        f.close()
        assert got == size, (got, size)
    _, hwm = _rss()
    return {"seconds": dt, "cpu": cpu, "peak_extra": hwm - rss0}


def _spawn(spec: dict) -> dict:
    here = os.path.dirname(os.path.abspath(__file__))
    code = (
        f"import json,sys; sys.path.insert(0, {here!r}); import bench_crypto as b; "
        "print('JSON' + json.dumps(b.run_case(json.loads(sys.argv[1]))))"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True
    )
    line = [x for x in p.stdout.splitlines() if x.startswith("JSON")]
    if not line:
        raise RuntimeError(p.stdout[-2000:] + p.stderr[-4000:])
    return json.loads(line[0][4:])


def _load_avg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


_MS_CODE = """
import os, sys, time, numpy as np, mindspore as ms
n, modes, tmp = int(sys.argv[1]) << 20, sys.argv[2].split(","), sys.argv[3]
t = ms.Tensor(np.random.default_rng(0).standard_normal(n // 4).astype(np.float32))
for mode in modes:
    key, p = bytes(range(16)), os.path.join(tmp, "ms.ckpt")
    t0 = time.perf_counter(); ms.save_checkpoint([{"name": "w", "data": t}], p, enc_key=key, enc_mode=mode)
    ts = time.perf_counter() - t0
    t0 = time.perf_counter(); ms.load_checkpoint(p, dec_key=key, dec_mode=mode)
    print("MS", mode, ts, time.perf_counter() - t0, flush=True)
    os.unlink(p)
"""


def time_mindspore(python: str, size_mib: int, modes: list[str], tmp: str) -> None:
    print(f"\n## MindSpore 2.10 itself ({python}), one {size_mib} MiB float32 tensor\n")
    print("| mode | save s | load s |")
    print("|---|---|---|")
    p = subprocess.run(
        [python, "-c", _MS_CODE, str(size_mib), ",".join(modes), tmp],
        capture_output=True,
        text=True,
    )
    for line in p.stdout.splitlines():
        if line.startswith("MS "):
            _, mode, ts, tl = line.split()
            print(f"| {mode} | {float(ts):.2f} | {float(tl):.2f} |")
            MS_REF[mode] = (float(ts) * 1024 / size_mib, float(tl) * 1024 / size_mib)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=0, help="cipher threads (0: library default)")
    ap.add_argument("--modes", default="AES-GCM,AES-CBC,SM4-CBC")
    ap.add_argument("--chunk-mib", type=int, default=16, help="bytes per write()/readinto() call")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per case (fresh process each); the median is shown, with the spread")
    ap.add_argument("--ops", default="save,load", help="which operations to time")
    ap.add_argument("--dir", default=None, help="directory for the temp files")
    ap.add_argument("--skip-limits", action="store_true")
    ap.add_argument(
        "--mindspore",
        default=None,
        metavar="PYTHON",
        help="also time MindSpore's own encrypted save/load with this interpreter",
    )
    args = ap.parse_args(argv)
    size = args.size_mib * MIB
    wanted = args.modes.split(",")
    print(f"# bench_crypto  size={args.size_mib} MiB  cpus={os.cpu_count()}  loadavg={_load_avg()}")
    import cryptography

    from mindckpt.codecs.crypto import default_workers

    print(
        f"# python {sys.version.split()[0]}  cryptography {cryptography.__version__}  "
        f"workers={args.workers or default_workers()}"
    )

    ossl = {
        ("AES-GCM", True): openssl_rate("aes-256-gcm"),
        ("AES-GCM", False): openssl_rate("aes-256-gcm", decrypt=True),
        ("AES-CBC", True): openssl_rate("aes-256-cbc"),
        ("AES-CBC", False): openssl_rate("aes-256-cbc", decrypt=True),
        ("SM4-CBC", True): openssl_rate("sm4-cbc"),
        ("SM4-CBC", False): openssl_rate("sm4-cbc", decrypt=True),
    }
    g = lambda r: "n/a" if r is None else f"{r / 1e9:.2f}"  # noqa: E731
    if not args.skip_limits:
        print("\n## Per-core cipher rates (GB/s, 1 GB = 1e9 B)\n")
        print(
            "| mode | dir | openssl speed 16 KiB, 1 core | cryptography update_into 1 MiB, 1 thread |"
        )
        print("|---|---|---|---|")
        n = 64 * MIB
        for mode in ("AES-GCM", "AES-CBC", "SM4-CBC"):
            nb = n if mode != "SM4-CBC" else 8 * MIB
            for enc in (True, False):
                buf = bytearray(nb + 32)
                update_into_seconds(mode, enc, min(nb, 4 * MIB), buf)
                best = min(update_into_seconds(mode, enc, nb, buf) for _ in range(3))
                print(
                    f"| {mode} | {'enc' if enc else 'dec'} | {g(ossl[(mode, enc)])} | {g(nb / best)} |"
                )
        print("\n## Does it use both cores? (AES-256, aggregate GB/s, 64 MiB per worker)\n")
        print("| strategy | 1 worker | 2 workers |")
        print("|---|---|---|")
        for label, fn in [
            ("GCM update_into, threads", lambda k: threads_rate("AES-GCM", k, n)),
            ("CBC-enc update_into, threads", lambda k: threads_rate("AES-CBC", k, n // 2)),
            ("GCM one-shot AESGCM.encrypt, threads (allocates)", lambda k: oneshot_rate(k, n)),
            ("GCM update_into, processes", lambda k: processes_rate("AES-GCM", k, n)),
            ("CBC-enc update_into, processes", lambda k: processes_rate("AES-CBC", k, n // 2)),
        ]:
            print(f"| {label} | {g(fn(1))} | {g(fn(2))} |")
        iters, secs = gil_probe(128 * MIB)
        print(
            f"\nGIL probe: a 128 MiB AES-CBC update_into in a thread took {secs:.2f} s while the main "
            f"thread ran {iters:,} Python loop iterations (0 would mean the GIL is held)."
        )
        print(f"loadavg now: {_load_avg()} (other processes compete for the 2 cores)")

    tmp = tempfile.mkdtemp(prefix="bench_crypto_", dir=args.dir)
    if args.mindspore:
        time_mindspore(args.mindspore, args.size_mib, wanted, tmp)
    try:
        print(f"\n## EncryptSink / DecryptSource, {args.size_mib} MiB\n")
        print(
            "A save of N MiB per write() copies into pooled 64 MiB block buffers; a write() that "
            "completes a block and goes on ciphers straight from the caller's buffer (no copy). "
            "A load readinto() that covers whole blocks not yet started reads and deciphers them "
            "straight into the caller's buffer (no copy); smaller reads copy out of pooled "
            "block buffers.\n"
        )
        print(
            "| mode | op | target | bytes per call | seconds (median) | min-max | GB/s | x openssl 1-core | x MindSpore speed | cpu s | peak extra RSS MiB |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        chunk = args.chunk_mib * MIB
        for mode in wanted:
            path = os.path.join(tmp, f"{mode}.ckpt")
            if "save" not in args.ops.split(","):  # write the file the load cases read
                _spawn({"op": "save", "target": "file", "mode": mode, "size": size, "path": path,
                        "workers": args.workers or None, "chunk": chunk})
            for op, target, per_call in (
                ("save", "null", chunk),
                ("save", "null", size),
                ("save", "file", chunk),
                ("save", "file", size),
                ("load", "file", chunk),
                ("load", "file", size),
            ):
                spec = {
                    "op": op,
                    "target": target,
                    "mode": mode,
                    "size": size,
                    "path": path,
                    "workers": args.workers or None,
                    "chunk": per_call,
                }
                if op not in args.ops.split(","):
                    continue
                runs = sorted((_spawn(spec) for _ in range(args.repeat)), key=lambda x: x["seconds"])
                r = runs[len(runs) // 2]
                spread = f"{runs[0]['seconds']:.2f}-{runs[-1]['seconds']:.2f}"
                rate = size / r["seconds"]
                ref = ossl[(mode, op == "save")]
                ms_s = MS_REF[mode][0 if op == "save" else 1] * size / (1 << 30)
                ms = f"{ms_s / r['seconds']:.1f}x"
                print(
                    f"| {mode} | {op} | {target} | {per_call // MIB} MiB | {r['seconds']:.2f} | {spread} | {rate / 1e9:.2f} | "
                    f"{'n/a' if ref is None else f'{rate / ref:.2f}'} | {ms} | {r['cpu']:.2f} | "
                    f"{r['peak_extra'] / MIB:.0f} |",
                    flush=True,
                )
            os.unlink(path)
        print(
            f"\nloadavg at end: {_load_avg()}. 'x MindSpore' = MindSpore 2.10 time for the same "
            f"bytes (one 1 GiB tensor, per GiB save/load: {MS_REF}) / ours; the 220-tensor "
            "baseline MindSpore is ~2x slower still for AES-GCM (15.4 s / 9.2 s)."
        )
        print(
            "save/file = returned from close() (data in the page cache, no fsync); "
            "load/file = warm (the file was just written)."
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
