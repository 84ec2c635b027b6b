"""Encryption codec for ``.ckpt`` files: MindSpore's block framing, streamed and parallel.

Format (format-spec §7; byte tables in :mod:`mindckpt.codecs._blocks`)
-----------------------------------------------------------------------
The plaintext checkpoint body is cut into blocks of ``BLOCK_SIZE`` (64 MiB) bytes, the last
one shorter; each block is encrypted on its own and framed as
``magic | [tag] | L | 16 | IV | C | ciphertext``. Empty plaintext gives a 0-byte file.
The key bytes are the cipher key as given (AES-128/192/256 by length; SM4 takes 16 bytes).

* AES-GCM: nonce = IV bytes 0-11, no AAD, 16-byte tag, no padding.
* AES-CBC, SM4-CBC: 16-byte random IV per block, PKCS#7 padding (always 1..16 bytes).

Integrity
---------
MindSpore authenticates each GCM block alone, so whole blocks can be reordered, dropped,
duplicated or spliced from another file encrypted with the same key. mindckpt's writer puts
a file id, the block index and a "last block" flag into the (authenticated) GCM nonce; see
``_blocks``. When the first block of a GCM file carries that layout, :class:`DecryptSource`
rejects any reordering, dropping, duplication, truncation at a block boundary or splicing.
Files written by MindSpore (random nonces) are read without those checks: on them, such
whole-block edits are only detected when they break the protobuf that follows.
The CBC modes have no integrity at all; :class:`EncryptSink` warns once per save.

Parallelism and memory
----------------------
Blocks are independent, so whole blocks are ciphered by a small thread pool: the
``cryptography`` package releases the GIL inside ``update_into`` (measured: a Python thread
keeps running during a 256 MiB call; see benchmarks/bench_crypto.py). Each block is ciphered
in place in 1 MiB pieces (cache friendly, nothing allocated) inside a pooled buffer, so the
extra memory is ``workers + 2`` (save) or ``workers + 1`` (load) block buffers, reused.
The save path copies the caller's bytes once into the pool buffer; a block is only ciphered
when the next byte arrives or at close(), because the nonce says whether it is the last one.
A single writer thread writes finished blocks in order; the load path reads ciphertext with
``os.preadv`` in 1 MiB pieces and decrypts each piece while it is still in cache.
"""

from __future__ import annotations

import collections
import os
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mindckpt.codecs import _blocks
from mindckpt.codecs._blocks import BLOCK_SIZE, HEADER_ROOM, MAGICS, BlockInfo
from mindckpt.errors import DecryptionError

__all__ = [
    "MODES",
    "BLOCK_SIZE",
    "check_cipher_args",
    "sniff_cipher",
    "EncryptSink",
    "DecryptSource",
]

MODES = ("AES-GCM", "AES-CBC", "SM4-CBC")
KEY_LENGTHS = {"AES-GCM": (16, 24, 32), "AES-CBC": (16, 24, 32), "SM4-CBC": (16,)}
PIECE = 1 << 20  # bytes per update_into call: fits in L2, no allocation
SLACK = 32  # update_into wants len(out) >= len(in) + 15; room for PKCS#7 too
MAX_DEFAULT_WORKERS = 4
# write() ciphers straight from the caller's buffer when a block gets at least this much of it
DIRECT_MIN = 1 << 20

CBC_WARNING = (
    "{mode} encrypts the checkpoint without any integrity protection: a modified file can "
    "decrypt to silently changed values. Use enc_mode='AES-GCM' (authenticated) unless the "
    "reader only supports {mode}."
)


def check_cipher_args(key, mode, *, key_arg: str = "enc_key", mode_arg: str = "enc_mode") -> None:
    """Raise before anything is written if ``mode`` is unknown or ``key`` has the wrong length."""
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise TypeError(f"{key_arg} must be bytes, got {type(key).__name__}")
    if mode not in MODES:
        raise ValueError(
            f"{mode_arg}={mode!r} is not supported; use one of 'AES-GCM', 'AES-CBC', 'SM4-CBC' "
            "(exact spelling, case-sensitive)"
        )
    n = len(key)
    allowed = KEY_LENGTHS[mode]
    if n not in allowed:
        if mode == "SM4-CBC":
            want = "16 bytes"
        else:
            want = "16, 24 or 32 bytes (AES-128, AES-192, AES-256)"
        raise ValueError(f"{key_arg} for {mode_arg}={mode!r} must be {want} long, got {n} bytes")


def sniff_cipher(head: bytes) -> str | None:
    """Mode named by the first 4 bytes of a file, or None if they are no encryption magic."""
    return _blocks.MODE_OF_MAGIC.get(bytes(head[:4]))


def default_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, MAX_DEFAULT_WORKERS))


def _cipher(mode: str, key: bytes, iv: bytes, tag: bytes | None = None, *, encrypt: bool):
    if mode == "AES-GCM":
        m = modes.GCM(iv, tag) if tag is not None else modes.GCM(iv)
        c = Cipher(algorithms.AES(key), m)
    elif mode == "AES-CBC":
        c = Cipher(algorithms.AES(key), modes.CBC(iv))  # type: ignore[arg-type]
    else:
        c = Cipher(algorithms.SM4(key), modes.CBC(iv))  # type: ignore[arg-type]
    return c.encryptor() if encrypt else c.decryptor()


_INPLACE: bool | None = None


def _inplace_ok() -> bool:
    """Does update_into(x, x) give the same bytes as out-of-place? (OpenSSL allows in == out.)"""
    global _INPLACE
    if _INPLACE is None:
        try:
            key, iv, data = bytes(range(16)), bytes(range(16, 32)), bytes(range(256)) * 17
            ok = True
            for mode in MODES:
                nonce = iv[:12] if mode == "AES-GCM" else iv
                ref = _cipher(mode, key, nonce, encrypt=True).update(data)
                buf = bytearray(data) + bytearray(SLACK)
                ctx = _cipher(mode, key, nonce, encrypt=True)
                ctx.update_into(memoryview(buf)[: len(data)], buf)
                ok = ok and bytes(buf[: len(data)]) == ref
            _INPLACE = ok
        except Exception:  # any refusal means: use the scratch-buffer path
            _INPLACE = False
    return _INPLACE


class _Feeder:
    """Feeds one block through a cipher context into ``out``, PIECE bytes per call.

    ``inplace`` ciphers bytes already in ``out`` (OpenSSL allows in == out); ``copy_in`` ciphers
    bytes from elsewhere (the caller's buffer) straight into ``out``, so they are never copied
    first. ``pos`` counts output bytes (CBC holds back a partial 16-byte block).
    """

    __slots__ = ("ctx", "out", "pos", "stop")

    def __init__(self, ctx, out: memoryview, stop: threading.Event | None = None):
        self.ctx, self.out, self.pos, self.stop = ctx, out, 0, stop

    def inplace(self, start: int, end: int) -> None:
        if start != self.pos:
            raise AssertionError("in-place cipher needs aligned input and output")
        ctx, out = self.ctx, self.out
        scratch = None if _inplace_ok() else bytearray(PIECE + SLACK)
        for o in range(start, end, PIECE):
            e = min(o + PIECE, end)
            p = self.pos
            if scratch is None:
                k = ctx.update_into(out[o:e], out[p : p + (e - o) + 15])
            else:
                k = ctx.update_into(out[o:e], scratch)
                out[p : p + k] = memoryview(scratch)[:k]
            self.pos = p + k
            if self.stop is not None and self.stop.is_set():
                raise _Stopped()

    def copy_in(self, src: memoryview) -> None:
        ctx, out = self.ctx, self.out
        for o in range(0, len(src), PIECE):
            piece = src[o : o + PIECE]
            p = self.pos
            self.pos = p + ctx.update_into(piece, out[p : p + len(piece) + 15])
            if self.stop is not None and self.stop.is_set():
                raise _Stopped()


class _Stopped(Exception):
    pass


class _BufferPool:
    """At most ``count`` bytearrays of ``size`` bytes, allocated on demand and reused."""

    def __init__(self, count: int, size: int):
        self.size = size
        self._free: list[bytearray] = []
        self._made = 0
        self._count = count
        self._cv = threading.Condition()
        self._closed = False

    def acquire(self) -> bytearray:
        with self._cv:
            while not self._free and self._made >= self._count and not self._closed:
                self._cv.wait()
            if self._closed:
                raise _Stopped()
            if self._free:
                return self._free.pop()
            self._made += 1
        return bytearray(self.size)

    def release(self, buf: bytearray) -> None:
        with self._cv:
            if not self._closed:
                self._free.append(buf)
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._free.clear()
            self._cv.notify_all()


def _byte_view(data) -> memoryview:
    mv = data if isinstance(data, memoryview) else memoryview(data)
    if mv.format != "B" or mv.ndim != 1:
        if not mv.contiguous:
            raise TypeError("EncryptSink.write needs a contiguous buffer")
        mv = mv.cast("B")
    return mv


# --------------------------------------------------------------------------------------------
# Save


class EncryptSink:
    """Write-only binary sink: plaintext in, MindSpore-framed encrypted blocks out to ``raw``.

    ``raw`` only needs ``.write(bytes-like)``. ``workers`` threads cipher whole blocks; one more
    thread writes them in order. Errors from those threads are raised by the next ``write`` or
    by ``close``. ``block_size`` (default 64 MiB, as MindSpore) exists for tests.
    """

    def __init__(
        self,
        raw: Any,
        key: bytes,
        mode: str = "AES-GCM",
        *,
        workers: int | None = None,
        block_size: int = BLOCK_SIZE,
    ):
        check_cipher_args(key, mode)
        if not 1 <= block_size <= BLOCK_SIZE:
            raise ValueError(f"block_size must be in 1..{BLOCK_SIZE}, got {block_size}")
        if mode != "AES-GCM":
            warnings.warn(CBC_WARNING.format(mode=mode), UserWarning, stacklevel=2)
        self._raw = raw
        self._key = bytes(key)
        self._mode = mode
        self._block = block_size
        self._direct_min = min(DIRECT_MIN, max(1, block_size // 4))
        self._workers = workers if workers and workers > 0 else default_workers()
        self._pool = _BufferPool(self._workers + 3, HEADER_ROOM + block_size + SLACK)
        self._file_id = os.urandom(_blocks.FILE_ID_SIZE)
        self._index = 0
        self._cur: bytearray | None = None
        self._cur_mv: memoryview | None = None
        self._fill = 0
        # GCM nonces carry a "last block" flag, so a full GCM block waits (pending) for the next
        # byte or close(); CBC blocks have random IVs and go as soon as they are full.
        self._defer = mode == "AES-GCM"
        self._pending: bytearray | None = None
        self._inflight: collections.deque[Future] = collections.deque()
        self._cipher_ex: ThreadPoolExecutor | None = None
        self._write_ex: ThreadPoolExecutor | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._written = 0
        self.closed = False

    # -- public -------------------------------------------------------------------------

    def write(self, data) -> int:
        if self.closed:
            raise ValueError("write to a closed EncryptSink")
        self._raise_error()
        mv = _byte_view(data)
        n = len(mv)
        pos = 0
        block = self._block
        direct: list[Future] = []
        try:
            while pos < n:
                if self._cur is None:
                    if self._pending is not None:
                        self._submit(self._pending, block, last=False)
                        self._pending = None
                    self._cur = self._acquire()
                    self._cur_mv = memoryview(self._cur)
                    self._fill = 0
                room = block - self._fill
                if room >= self._direct_min and n - pos >= room + block:
                    # A huge write: this block completes inside this call and at least a whole
                    # block follows (so it is not the last one). Cipher its remainder straight
                    # from the caller's buffer; write() then waits for it, but by then the
                    # workers have had several blocks to run in parallel.
                    tail = mv[pos : pos + room]
                    direct.append(self._submit(self._cur, self._fill, last=False, tail=tail))
                    self._cur = self._cur_mv = None
                    pos += room
                    continue
                take = min(room, n - pos)
                start = HEADER_ROOM + self._fill
                cast(memoryview, self._cur_mv)[start : start + take] = mv[pos : pos + take]
                self._fill += take
                pos += take
                if self._fill == block:
                    if self._defer:
                        self._pending = self._cur
                    else:
                        self._submit(self._cur, block, last=False)
                    self._cur = self._cur_mv = None
        finally:
            # The workers read the caller's buffer: it must stay untouched until they are done.
            for fut in direct:
                try:
                    fut.result()
                except BaseException:
                    pass  # stored by _emit and raised below / at close()
        self._raise_error()
        self._written += n
        return n

    def tell(self) -> int:
        """Plaintext bytes accepted so far."""
        return self._written

    def close(self) -> None:
        """Encrypt and write what is buffered, wait for the workers, raise their first error."""
        if self.closed:
            return
        try:
            self._raise_error()
            if self._pending is not None:
                self._submit(self._pending, self._block, last=True)
                self._pending = None
            elif self._cur is not None:
                if self._fill:
                    self._submit(self._cur, self._fill, last=True)
                else:
                    self._pool.release(self._cur)
                self._cur = self._cur_mv = None
            while self._inflight:
                self._inflight.popleft().result()
            self._raise_error()
        except BaseException:
            self.abort()
            raise
        self._shutdown(wait=True)
        self.closed = True

    def abort(self) -> None:
        """Stop the workers and drop all buffers; never raises."""
        try:
            self._stop.set()
            self._pool.close()
            self._shutdown(wait=True, cancel=True)
        except Exception:
            pass
        self._cur = self._cur_mv = self._pending = None
        self._inflight.clear()
        self.closed = True

    def __enter__(self) -> EncryptSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- internals ----------------------------------------------------------------------

    def _raise_error(self) -> None:
        while self._inflight and self._inflight[0].done():
            self._inflight.popleft().result()
        if self._error is not None:
            raise self._error

    def _acquire(self) -> bytearray:
        try:
            return self._pool.acquire()
        except _Stopped:
            self._raise_error()
            raise ValueError("EncryptSink was aborted") from None

    def _submit(
        self, buf: bytearray, n: int, *, last: bool, tail: memoryview | None = None
    ) -> Future:
        if self._cipher_ex is None:
            self._cipher_ex = ThreadPoolExecutor(
                self._workers, thread_name_prefix="mindckpt-encrypt"
            )
            self._write_ex = ThreadPoolExecutor(1, thread_name_prefix="mindckpt-write")
        index = self._index
        self._index += 1
        if self._mode == "AES-GCM":
            iv = _blocks.make_gcm_iv(self._file_id, index, last)
        else:
            iv = os.urandom(16)
        sealed = self._cipher_ex.submit(self._seal, buf, n, iv, tail)
        write_ex = cast(ThreadPoolExecutor, self._write_ex)  # created with _cipher_ex
        self._inflight.append(write_ex.submit(self._emit, sealed, buf))
        return sealed

    def _seal(self, buf: bytearray, n: int, iv: bytes, tail: memoryview | None) -> tuple[int, int]:
        """Encrypt ``buf[HEADER_ROOM:][:n]`` (then ``tail``) in place, header in front."""
        payload = memoryview(buf)[HEADER_ROOM:]
        gcm = self._mode == "AES-GCM"
        ctx = _cipher(self._mode, self._key, iv[:12] if gcm else iv, encrypt=True)
        feed = _Feeder(ctx, payload, self._stop)
        total = n + (len(tail) if tail is not None else 0)
        pad = 0 if gcm else 16 - total % 16
        if tail is None:
            if pad:
                payload[n : n + pad] = bytes((pad,)) * pad
            feed.inplace(0, n + pad)
        else:
            feed.inplace(0, n)
            feed.copy_in(tail)
            if pad:
                feed.copy_in(memoryview(bytes((pad,)) * pad))
        ctx.finalize()
        c = total + pad
        if feed.pos != c:
            raise AssertionError(f"cipher produced {feed.pos} bytes, expected {c}")
        start = _blocks.pack_header_into(buf, self._mode, c, iv, ctx.tag if gcm else b"")
        return start, HEADER_ROOM + c

    def _emit(self, sealed: Future, buf: bytearray) -> None:
        try:
            if self._error is not None or self._stop.is_set():
                return
            start, end = sealed.result()
            mv = memoryview(buf)[start:end]
            while len(mv):
                k = self._raw.write(mv)
                if k is None or k >= len(mv):
                    break
                mv = mv[k:]
        except _Stopped:
            pass
        except BaseException as exc:  # stored, raised at the next write()/close()
            if self._error is None:
                self._error = exc
            self._stop.set()
            raise
        finally:
            self._pool.release(buf)

    def _shutdown(self, *, wait: bool, cancel: bool = False) -> None:
        for ex in (self._write_ex, self._cipher_ex):
            if ex is not None:
                ex.shutdown(wait=wait, cancel_futures=cancel)
        self._cipher_ex = self._write_ex = None


# --------------------------------------------------------------------------------------------
# Load


class _BlockFailure(Exception):
    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class DecryptSource:
    """Read-only sequential plaintext stream over an encrypted ``.ckpt`` file.

    Every block header is read and checked at open (``size_hint`` comes from them). Blocks are
    decrypted ahead by ``workers`` threads; a block's plaintext is handed out only after its
    tag (GCM) or padding (CBC) checked out.
    """

    def __init__(
        self,
        f: BinaryIO,
        key: bytes,
        mode: str = "AES-GCM",
        *,
        path: str = "<stream>",
        workers: int | None = None,
    ):
        try:
            check_cipher_args(key, mode, key_arg="dec_key", mode_arg="dec_mode")
        except (TypeError, ValueError) as exc:
            raise DecryptionError(f"Cannot decrypt {path!r}: {exc}") from exc
        self._f = f
        self._key = bytes(key)
        self._mode = mode
        self._path = path
        self._blocks: list[BlockInfo] = _blocks.scan_blocks(f, mode, path)
        self._ours = mode == "AES-GCM" and _blocks.is_ours(self._blocks)
        if self._ours:
            _blocks.check_sequence(self._blocks, mode, path)
        if mode == "AES-GCM":
            self.size_hint = sum(b.size for b in self._blocks)
        else:
            self.size_hint = sum(b.size - 1 for b in self._blocks)
        try:
            self._fd: int | None = f.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None
        self._io_lock = threading.Lock()
        self._workers = workers if workers and workers > 0 else default_workers()
        maxc = max((b.size for b in self._blocks), default=0)
        depth = min(self._workers, len(self._blocks))
        self._depth = max(depth, 1)
        self._pool = _BufferPool(self._depth + 1, maxc + SLACK)
        self._ex: ThreadPoolExecutor | None = None
        self._next = 0  # next block to schedule
        self._ahead: collections.deque[tuple[BlockInfo, bytearray, Future]] = collections.deque()
        self._cur: bytearray | None = None
        self._cur_mv: memoryview | None = None
        self._pos = 0
        self._end = 0
        self._stop = threading.Event()
        self._legacy_iv = False
        self.closed = False

    # -- public -------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.closed:
            raise ValueError("read from a closed DecryptSource")
        out = _byte_view(b)
        want = len(out)
        got = 0
        while got < want:
            if self._pos >= self._end and not self._advance():
                break
            k = min(self._end - self._pos, want - got)
            out[got : got + k] = cast(memoryview, self._cur_mv)[self._pos : self._pos + k]
            self._pos += k
            got += k
        return got

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = bytearray()
            chunk = bytearray(min(self.size_hint, 16 << 20) or 1)
            while True:
                k = self.readinto(chunk)
                if not k:
                    return bytes(parts)
                parts += memoryview(chunk)[:k]
        buf = bytearray(n)
        k = self.readinto(buf)
        return bytes(memoryview(buf)[:k])

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        if self._ex is not None:
            self._ex.shutdown(wait=True, cancel_futures=True)
            self._ex = None
        self._pool.close()
        self._ahead.clear()
        self._cur = self._cur_mv = None

    def __enter__(self) -> DecryptSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------

    def _schedule(self) -> None:
        while self._next < len(self._blocks) and len(self._ahead) < self._depth:
            if self._ex is None:
                self._ex = ThreadPoolExecutor(self._depth, thread_name_prefix="mindckpt-decrypt")
            info = self._blocks[self._next]
            self._next += 1
            buf = self._pool.acquire()
            self._ahead.append((info, buf, self._ex.submit(self._open, info, buf)))

    def _advance(self) -> bool:
        if self._cur is not None:
            self._pool.release(self._cur)
            self._cur = self._cur_mv = None
        self._schedule()
        if not self._ahead:
            return False
        info, buf, fut = self._ahead.popleft()
        try:
            n = fut.result()
        except _BlockFailure as exc:
            self.close()
            raise self._explain(info, exc.kind) from None
        except OSError as exc:
            self.close()
            raise DecryptionError(
                f"Cannot decrypt {self._path!r}: reading block {info.index} at byte offset "
                f"{info.offset} failed: {exc}. Check that the file is readable and was not "
                "modified while loading"
            ) from exc
        self._cur, self._cur_mv, self._pos, self._end = buf, memoryview(buf), 0, n
        self._schedule()
        return True

    def _read_at(self, mv: memoryview, offset: int) -> None:
        if self._fd is not None:
            while len(mv):
                k = os.preadv(self._fd, [mv], offset)
                if k <= 0:
                    raise _BlockFailure("short")
                mv, offset = mv[k:], offset + k
            return
        with self._io_lock:
            self._f.seek(offset)
            while len(mv):
                k = self._f.readinto(mv)  # type: ignore[attr-defined]
                if not k:
                    raise _BlockFailure("short")
                mv = mv[k:]

    def _decrypt_into(self, info: BlockInfo, mv: memoryview, iv: bytes) -> int:
        c = info.size
        tag = info.tag if self._mode == "AES-GCM" else None
        ctx = _cipher(self._mode, self._key, iv, tag, encrypt=False)
        stop = self._stop
        feed = _Feeder(ctx, mv, stop)
        for o in range(0, c, PIECE):
            e = min(o + PIECE, c)
            self._read_at(mv[o:e], info.data_offset + o)
            feed.inplace(o, e)
        try:
            ctx.finalize()
        except InvalidTag:
            raise _BlockFailure("tag") from None
        except ValueError:  # CBC data not a multiple of the block size; checked at scan
            raise _BlockFailure("padding") from None
        if tag is not None:
            return c
        pad = mv[c - 1]
        if not 1 <= pad <= 16 or mv[c - pad : c] != bytes((pad,)) * pad:
            raise _BlockFailure("padding")
        return c - pad

    def _open(self, info: BlockInfo, buf: bytearray) -> int:
        mv = memoryview(buf)
        if self._mode != "AES-GCM":
            return self._decrypt_into(info, mv, info.iv)
        iv = info.iv if self._legacy_iv else info.iv[:12]
        try:
            return self._decrypt_into(info, mv, iv)
        except _BlockFailure:
            if self._ours or self._legacy_iv:
                raise
        # MindSpore versions before 2.10 fed all 16 IV bytes to GCM (format-spec §7.3).
        n = self._decrypt_into(info, mv, info.iv)
        self._legacy_iv = True
        return n

    def _explain(self, info: BlockInfo, kind: str) -> DecryptionError:
        mode = self._mode
        fail = _blocks._fail
        p, i, off = self._path, info.index, info.offset
        if kind == "short":
            return fail(
                p,
                mode,
                i,
                off,
                "the file became shorter while it was being read",
                "Do not modify a checkpoint while it is loading",
            )
        if kind == "tag":
            if i == 0:
                return fail(
                    p,
                    mode,
                    i,
                    off,
                    "AES-GCM authentication failed on the first block: the dec_key is wrong, or "
                    "the block was modified",
                    "Pass the enc_key used when saving; if it is right, restore the file from a good copy",
                )
            return fail(
                p,
                mode,
                i,
                off,
                f"AES-GCM authentication failed although blocks 0..{i - 1} decrypted with this "
                "key: the block was modified (tampered with or corrupted on disk), or spliced in "
                "from a file encrypted with another key",
                "Restore the file from a good copy",
            )
        if i == 0:
            return fail(
                p,
                mode,
                i,
                off,
                f"the PKCS#7 padding is invalid: the dec_key is wrong, the file was not written with "
                f"{mode}, or it was modified ({mode} has no integrity check, so damage is only "
                "caught by chance)",
                "Pass the enc_key and enc_mode used when saving",
            )
        return fail(
            p,
            mode,
            i,
            off,
            f"the PKCS#7 padding is invalid although blocks 0..{i - 1} decrypted: the block was "
            "modified or spliced in from another file",
            "Restore the file from a good copy",
        )


# Re-exported for callers that frame files themselves.
MAGIC = MAGICS
