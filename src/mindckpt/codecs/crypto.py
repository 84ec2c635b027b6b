"""Encryption codec for ``.ckpt`` files: MindSpore's block framing, streamed and parallel.

Format (format-spec §7; byte tables in :mod:`mindckpt.codecs._blocks`)
-----------------------------------------------------------------------
The plaintext checkpoint body is cut into blocks (MindSpore: ``BLOCK_SIZE``, 64 MiB; mindckpt:
``WRITE_BLOCK_SIZE``, 4 MiB; readers accept any size up to 64 MiB), the last one shorter;
each block is encrypted on its own and framed as
``magic | [tag] | L | 16 | IV | C | ciphertext``. Empty plaintext gives a 0-byte file.
The key bytes are the cipher key as given (AES-128/192/256 by length; SM4 takes 16 bytes).

* AES-GCM: nonce = IV bytes 0-11, no AAD, 16-byte tag, no padding.
* AES-CBC, SM4-CBC: 16-byte random IV per block, PKCS#7 padding (always 1..16 bytes).

Integrity: what is guaranteed, for which files
-----------------------------------------------
mindckpt's writer puts a file id, the block index and a "last block" flag into each GCM nonce
(layout in ``_blocks``); the nonce is authenticated by the block's tag. Such blocks are
*bound*. MindSpore's writer uses random nonces: its blocks are *unbound*. The readers
(:class:`DecryptSource`, :class:`DecryptByteSource`) decide from all headers at open:

* **Blocks must agree.** A file with bound and unbound blocks is rejected (DecryptionError
  naming the file and the first block of the minority). So replacing block 0 of a mindckpt
  file by a same-key MindSpore block no longer switches the order checks off, and mindckpt
  blocks spliced into a MindSpore file are refused. (A MindSpore block's random nonce starts
  with the 3-byte marker by chance with probability 2**-24, so a MindSpore file of n blocks
  is refused by mistake with probability about n * 6e-8: 1e-5 for a 10 GiB file.)
* **AES-GCM written by mindckpt (all blocks bound).** Every plaintext byte handed out is
  authenticated, and so is its place: changing any tag, nonce or ciphertext byte, reordering,
  dropping, duplicating or appending blocks, splicing blocks from any other file (mindckpt's
  or MindSpore's, same key), truncating inside a block or at a block boundary, and junk after
  the last block are all rejected. IV bytes 12-15 (unused by GCM) are checked too. The
  sequential reader has checked completeness once it reaches the end; the positional reader
  checks the "last" flag from the headers at open and authenticates it when it decrypts
  that block. A 0-byte file is the (valid) encryption of an empty body, as in MindSpore;
  the checkpoint parser rejects an empty checkpoint.
* **AES-GCM written by MindSpore (no order data).** Each block is authenticated alone: any
  changed tag, nonce (IV bytes 0-11) or ciphertext byte is rejected, and so are header
  edits and partial blocks. Whole-block edits are **not** detected by the decryptor:
  reordering, dropping (incl. truncation at a block boundary), duplicating blocks or
  splicing in blocks from another MindSpore-written file with the same key; they surface
  only if the protobuf that follows breaks. IV bytes 12-15 are unused and not checked.
  Pre-2.10 files (GCM over all 16 IV bytes) are read too: block 0 settles the IV form, and
  every other block must use it.
* **AES-CBC, SM4-CBC.** No integrity at all (:class:`EncryptSink` warns once per save).
  Header edits, partial blocks and mixed modes are rejected; a changed IV or ciphertext
  byte decrypts to silently changed plaintext unless it breaks the PKCS#7 padding at the
  end of a block (about 255 in 256 for damage to the last 32 bytes of a block).
* **Strict mode** (``require_bound=True``): only all-bound AES-GCM files are accepted;
  MindSpore-written GCM files and every CBC file are refused at open.

Parallelism and memory
----------------------
Blocks are independent, so whole blocks are ciphered by a small thread pool: the
``cryptography`` package releases the GIL inside ``update_into`` (measured: a Python thread
keeps running during a 256 MiB call; see benchmarks/bench_crypto.py). Each block is ciphered
in place in 1 MiB pieces (cache friendly, nothing allocated) inside a pooled buffer, so the
extra memory is ``workers + 2`` (save) or ``workers + 1`` (load) block buffers, reused.
The save path copies the caller's bytes once into the pool buffer; a block is only ciphered
when the next byte arrives or at close(), because the nonce says whether it is the last one.
A single writer thread writes finished blocks in order.

The load path reads ciphertext from a positional byte source (``size``, ``readinto(mv,
offset)``; file objects are adapted, fds read with ``os.preadv``) in 1 MiB pieces and
deciphers each piece in place while it is still in cache. A block whose plaintext lies
wholly inside the caller's buffer is read and deciphered there (no copy; the buffer then
holds unverified bytes if the call raises), a GCM block that ends past it is split there;
otherwise into a pooled buffer, copied out once verified. CBC plaintext lengths come from a 32-byte probe of each block's padding.
"""

from __future__ import annotations

import bisect
import collections
import itertools
import os
import threading
import warnings
from array import array
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mindckpt.codecs import _blocks
from mindckpt.codecs._blocks import BLOCK_SIZE, HEADER_ROOM, MAGICS
from mindckpt.codecs._source import PositionalSource, as_positional, read_full
from mindckpt.errors import DecryptionError

__all__ = [
    "MODES",
    "BLOCK_SIZE",
    "WRITE_BLOCK_SIZE",
    "check_cipher_args",
    "sniff_cipher",
    "EncryptSink",
    "DecryptSource",
    "DecryptByteSource",
    "PositionalSource",
]

MODES = ("AES-GCM", "AES-CBC", "SM4-CBC")
KEY_LENGTHS = {"AES-GCM": (16, 24, 32), "AES-CBC": (16, 24, 32), "SM4-CBC": (16,)}
PIECE = 1 << 20  # bytes per update_into call: fits in L2, no allocation
SLACK = 32  # update_into wants len(out) >= len(in) + 15; room for PKCS#7 too
MAX_DEFAULT_WORKERS = 4
# write() ciphers straight from the caller's buffer when a block gets at least this much of it
DIRECT_MIN = 1 << 20
#: The plaintext per block mindckpt writes.  MindSpore writes 64 MiB blocks (BLOCK_SIZE, also
#: the largest any reader accepts) and reads blocks of any size up to that; 4 MiB blocks keep
#: the save's pool of workers + 3 block buffers at 28 MiB instead of 448 MiB, whose first
#: allocation (page faults and zeroing) was a third of a fresh process's encrypted save.  The
#: 48 bytes of header per block cost 0.001% of the file.
WRITE_BLOCK_SIZE = 4 << 20

CBC_WARNING = (
    "{mode} encrypts the checkpoint without any integrity protection: a modified file can "
    "decrypt to silently changed values. Use enc_mode='AES-GCM' (authenticated) unless the "
    "reader only supports {mode}."
)


def check_cipher_args(
    key,
    mode,
    *,
    key_arg: str = "enc_key",
    mode_arg: str = "enc_mode",
    api: str | None = None,
) -> None:
    """Raise before anything is written if ``mode`` is unknown or ``key`` has the wrong length.

    The one home of these checks and their messages: TypeError for a key that is not bytes,
    ValueError for an unknown mode or a wrong key length. ``api`` (e.g. ``"save_checkpoint"``)
    prefixes the message MindSpore-style: ``For 'save_checkpoint', ...``.
    """
    where = f"For '{api}', " if api else ""
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise TypeError(f"{where}{key_arg} must be bytes, got {type(key).__name__}")
    if mode not in MODES:
        raise ValueError(
            f"{where}{mode_arg}={mode!r} is not supported; use one of 'AES-GCM', 'AES-CBC', "
            "'SM4-CBC' (exact spelling, case-sensitive)"
        )
    n = len(key)
    allowed = KEY_LENGTHS[mode]
    if n not in allowed:
        if mode == "SM4-CBC":
            want = "16 bytes"
        else:
            want = "16, 24 or 32 bytes (AES-128, AES-192, AES-256)"
        raise ValueError(
            f"{where}{key_arg} for {mode_arg}={mode!r} must be {want} long, got {n} bytes"
        )


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
            raise TypeError("a contiguous buffer is needed (got a strided view); pass a copy")
        mv = mv.cast("B")
    return mv


# --------------------------------------------------------------------------------------------
# Save


class EncryptSink:
    """Write-only binary sink: plaintext in, MindSpore-framed encrypted blocks out to ``raw``.

    ``raw`` only needs ``.write(bytes-like)``. ``workers`` threads cipher whole blocks; one more
    thread writes them in order. Errors from those threads are raised by the next ``write`` or
    by ``close``. ``block_size``: plaintext per block (default :data:`WRITE_BLOCK_SIZE`, at most
    64 MiB).
    """

    def __init__(
        self,
        raw: Any,
        key: bytes,
        mode: str = "AES-GCM",
        *,
        workers: int | None = None,
        block_size: int = WRITE_BLOCK_SIZE,
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

GCM12, GCM16 = 12, 16  # GCM IV forms: 2.10 uses IV bytes 0-11 as the nonce; older versions all 16


class _BlockFailure(Exception):
    def __init__(self, kind: str, index: int, cause: BaseException | None = None):
        super().__init__(kind)
        self.kind, self.index, self.cause = kind, index, cause


def _cipher_run(ctx, src: PositionalSource, out: memoryview, n: int, base: int, index: int,
                stop: threading.Event | None) -> None:
    """Read ciphertext bytes ``base .. base+n`` into ``out[:n]`` and decipher them in place.

    1 MiB pieces (read, then ciphered while in cache). An in-place call needs 15 bytes of room
    past its input; where ``out`` ends sooner the last few bytes go through a small scratch.
    """
    inplace = _inplace_ok()
    lim = len(out) - 15
    scratch = None if inplace else bytearray(PIECE + SLACK)
    for o in range(0, n, PIECE):
        e = min(o + PIECE, n)
        try:
            got = read_full(src, out[o:e], base + o)
        except OSError as exc:
            raise _BlockFailure("io", index, exc) from exc
        if got < e - o:
            raise _BlockFailure("short", index)
        m = o
        if inplace:
            m = e if e <= lim else o + max(0, lim - o) // 16 * 16
            if m > o and ctx.update_into(out[o:m], out[o : m + 15]) != m - o:
                raise RuntimeError("cipher output lagged its input")
        if m < e:
            tmp = scratch if scratch is not None else bytearray(e - m + SLACK)
            k = ctx.update_into(out[m:e], tmp)
            if k != e - m:
                raise RuntimeError("cipher output lagged its input")
            out[m:e] = memoryview(tmp)[:k]
        if stop is not None and stop.is_set():
            raise _Stopped()


class _BlockFile:
    """One encrypted file: its scanned blocks, whether they are bound, and one-block decryption.

    Shared by :class:`DecryptSource` and :class:`DecryptByteSource`. ``decrypt`` may run in
    worker threads and touches no shared state; the GCM IV form of an unbound file is settled
    by ``finish`` alone, in the one thread that consumes the results.
    """

    def __init__(self, src: Any, key: bytes, mode: str, path: str, require_bound: bool):
        try:
            check_cipher_args(key, mode, key_arg="dec_key", mode_arg="dec_mode")
        except (TypeError, ValueError) as exc:
            raise DecryptionError(f"Cannot decrypt {path!r}: {exc}") from exc
        self.src = as_positional(src)
        self.key = bytes(key)
        self.mode = mode
        self.path = path
        self.gcm = mode == "AES-GCM"
        self.table = _blocks.scan_blocks(self.src, mode, path)
        self.bound = _blocks.check_binding(self.table, path, require_bound=require_bound)
        self.file_id = _blocks.file_id(self.table) if self.bound else None
        n = len(self.table)
        # plaintext bytes per block: C (GCM) or C - pad (CBC; -1 until probed)
        self.plain = array("q", self.table.sizes) if self.gcm else array("q", [-1]) * n
        # GCM IV form: fixed for bound files, settled by the first block consumed otherwise
        self.form: int | None = GCM12 if (self.bound or not self.gcm) else None
        self.verified = False  # has any block decrypted and checked out?
        self.max_c = max(self.table.sizes, default=0)

    def guess(self) -> int:
        return GCM12 if self.form is None else self.form

    def plain_len(self, i: int) -> int:
        p = self.plain[i]
        if p < 0:
            p = self.plain[i] = self._probe(i)
        return p

    def _probe(self, i: int) -> int:
        """CBC: the padding of block ``i`` from its last cipher block (one 32-byte read)."""
        c, base = self.table.size(i), self.table.data_offset(i)
        want = 32 if c >= 32 else 16
        buf = bytearray(want)
        try:
            got = read_full(self.src, memoryview(buf), base + c - want)
        except OSError as exc:
            raise _BlockFailure("io", i, exc) from exc
        if got < want:
            raise _BlockFailure("short", i)
        prev = bytes(buf[:16]) if want == 32 else self.table.iv(i)
        ctx = _cipher(self.mode, self.key, prev, encrypt=False)
        last = ctx.update(bytes(buf[-16:])) + ctx.finalize()
        pad = last[15]
        if not 1 <= pad <= 16 or last[16 - pad :] != bytes((pad,)) * pad:
            raise _BlockFailure("padding", i)
        return c - pad

    def decrypt(self, i: int, out: memoryview, form: int, stop: threading.Event | None = None,
                rest: memoryview | None = None) -> int:
        """Plaintext of block ``i`` into ``out[:n]``; return n. ``out`` needs n bytes (GCM: C).

        GCM only, ``rest``: the block is split, its first ``len(out)`` plaintext bytes go to
        ``out`` (the end of a caller's buffer) and the others to ``rest`` (one cipher pass).
        Raises _BlockFailure; on failure ``out`` (and ``rest``) hold unverified bytes.
        """
        t = self.table
        c, base, iv = t.size(i), t.data_offset(i), t.iv(i)
        if self.gcm:
            nonce = iv[:12] if form == GCM12 else iv
            ctx = _cipher(self.mode, self.key, nonce, t.tag(i), encrypt=False)
            if rest is None:
                _cipher_run(ctx, self.src, out, c, base, i, stop)
            else:
                head = len(out)
                if not 0 < head < c or len(rest) < c - head:
                    raise _BlockFailure("changed", i)
                _cipher_run(ctx, self.src, out, head, base, i, stop)
                _cipher_run(ctx, self.src, rest, c - head, base + head, i, stop)
            try:
                ctx.finalize()
            except InvalidTag:
                raise _BlockFailure("tag", i) from None
            return c
        # CBC: all but the last cipher block straight into out, the last one (padding) apart
        ctx = _cipher(self.mode, self.key, iv, encrypt=False)
        body = c - 16
        _cipher_run(ctx, self.src, out, body, base, i, stop)
        last = bytearray(16 + SLACK)
        lmv = memoryview(last)
        try:
            got = read_full(self.src, lmv[:16], base + body)
        except OSError as exc:
            raise _BlockFailure("io", i, exc) from exc
        if got < 16:
            raise _BlockFailure("short", i)
        ctx.update_into(lmv[:16], lmv)
        try:
            ctx.finalize()
        except ValueError:  # not a multiple of the block size; checked at scan
            raise _BlockFailure("padding", i) from None
        pad = last[15]
        if not 1 <= pad <= 16 or last[16 - pad : 16] != bytes((pad,)) * pad:
            raise _BlockFailure("padding", i)
        p = c - pad
        if self.plain[i] not in (-1, p) or len(out) < p:
            raise _BlockFailure("changed", i)
        out[body:p] = lmv[: 16 - pad]
        return p

    def finish(self, i: int, out: memoryview, outcome: Any, form: int,
               rest: memoryview | None = None) -> int:
        """Take a worker's outcome (byte count or exception) for block ``i``, in consuming order.

        Settles the IV form of an unbound GCM file from the first block consumed: MindSpore
        before 2.10 fed all 16 IV bytes to GCM (format-spec §7.3), so a tag failure there is
        retried once with the other form, and every later block must use the form that worked.
        Results computed under a guessed form that turned out wrong are recomputed.
        """
        if self.gcm and self.form is None:
            if isinstance(outcome, int):
                self.form = form
            elif isinstance(outcome, _BlockFailure) and outcome.kind == "tag":
                other = GCM16 if form == GCM12 else GCM12
                outcome = self.decrypt(i, out, other, rest=rest)
                self.form = other
            else:
                raise outcome
        elif self.gcm and form != self.form:
            outcome = self.decrypt(i, out, cast(int, self.form), rest=rest)
        if isinstance(outcome, BaseException):
            raise outcome
        self.verified = True
        return cast(int, outcome)

    def error(self, exc: _BlockFailure) -> DecryptionError:
        """The DecryptionError (file, mode, block, offset, cause, fix) for a failed block."""
        mode, p, i = self.mode, self.path, exc.index
        off = self.table.offsets[i]
        kind = exc.kind

        def fail(what: str, fix: str) -> DecryptionError:
            return _blocks._fail(p, mode, i, off, what, fix)

        if kind == "io":
            return fail(
                f"reading the block failed: {exc.cause}",
                "Check that the file is readable and was not modified while loading",
            )
        if kind in ("short", "changed"):
            what = (
                "the file became shorter while it was being read"
                if kind == "short"
                else "the block's padding changed between two reads: the file was modified "
                "while it was being read"
            )
            return fail(what, "Do not modify a checkpoint while it is loading")
        first = not self.verified
        if kind == "tag":
            if first:
                return fail(
                    "AES-GCM authentication failed on the first block decrypted: the dec_key is "
                    "wrong, or the block was modified",
                    "Pass the enc_key used when saving; if it is right, restore the file from a "
                    "good copy",
                )
            return fail(
                "AES-GCM authentication failed although other blocks of this file decrypted "
                "with this key: the block was modified (tampered with or corrupted on disk), or "
                "spliced in from a file encrypted with another key",
                "Restore the file from a good copy",
            )
        if first:
            return fail(
                f"the PKCS#7 padding is invalid: the dec_key is wrong, the file was not written "
                f"with {mode}, or it was modified ({mode} has no integrity check, so damage is "
                "only caught by chance)",
                "Pass the enc_key and enc_mode used when saving",
            )
        return fail(
            "the PKCS#7 padding is invalid although other blocks of this file decrypted: the "
            "block was modified or spliced in from another file",
            "Restore the file from a good copy",
        )


def _outcome(fut: Future) -> Any:
    try:
        return fut.result()
    except Exception as exc:  # handed to _BlockFile.finish, which raises what is final
        return exc


class DecryptSource:
    """Read-only sequential plaintext stream over an encrypted ``.ckpt`` file.

    ``f`` is a positional byte source (``size`` and ``readinto(mv, offset)``) or a seekable
    binary file object. Every block header is read and checked at open (``size_hint`` comes
    from them: exact for GCM, an upper bound for CBC), together with the binding of the
    blocks (see the module docstring; ``require_bound=True`` refuses unbound files).

    Blocks are decrypted by ``workers`` threads; a block's plaintext is handed out only after
    its tag (GCM) or padding (CBC) checked out. A ``readinto`` whose buffer covers whole blocks
    not yet started has them read and deciphered straight into that buffer (no copy), and a
    GCM block that starts inside the buffer and ends past it has its head deciphered there
    and only its rest into a pooled buffer; if one of them then fails, the call raises and the
    buffer holds unverified bytes. CBC blocks (SM4 is slow) are also deciphered ahead into
    pooled buffers between calls; GCM blocks, deciphered at memory speed, wait for the call
    that says where they go. One consumer thread at a time.
    """

    def __init__(
        self,
        f: Any,
        key: bytes,
        mode: str = "AES-GCM",
        *,
        path: str = "<stream>",
        workers: int | None = None,
        require_bound: bool = False,
    ):
        self._bf = bf = _BlockFile(f, key, mode, path, require_bound)
        self._blocks = bf.table
        self._ours = self.bound = bf.bound
        self.file_id = bf.file_id
        n = len(bf.table)
        total = sum(bf.table.sizes)
        self.size_hint = total if bf.gcm else total - n
        self._workers = workers if workers and workers > 0 else default_workers()
        self._depth = max(1, min(self._workers, n))
        self._pool = _BufferPool(self._depth + 1, bf.max_c + SLACK)
        self._ex: ThreadPoolExecutor | None = None
        self._next = 0  # next block to schedule
        # in flight, in block order: (index, pool buffer or None, direct target or None, future,
        # form); a block with both is split: its head goes to the target, the rest to the buffer
        self._queue: collections.deque[
            tuple[int, bytearray | None, memoryview | None, Future, int]
        ] = collections.deque()
        self._cur: bytearray | None = None
        self._cur_mv: memoryview | None = None
        self._pos = 0
        self._end = 0
        self._stop = threading.Event()
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
        try:
            while got < want:
                if self._pos < self._end:
                    k = min(self._end - self._pos, want - got)
                    out[got : got + k] = cast(memoryview, self._cur_mv)[self._pos : self._pos + k]
                    self._pos += k
                    got += k
                    continue
                if self._cur is not None:
                    self._pool.release(self._cur)
                    self._cur = self._cur_mv = None
                self._refill(out, got)
                if not self._queue:
                    break
                i, buf, dest, fut, form = self._queue.popleft()
                if dest is not None and buf is not None:  # split: head here, rest buffered
                    rest = memoryview(buf)
                    k = self._bf.finish(i, dest, _outcome(fut), form, rest=rest)
                    got += len(dest)
                    self._cur, self._cur_mv, self._pos, self._end = buf, rest, 0, k - len(dest)
                    continue
                target = dest if dest is not None else memoryview(cast(bytearray, buf))
                k = self._bf.finish(i, target, _outcome(fut), form)
                if dest is not None:
                    if k != len(dest):
                        raise _BlockFailure("changed", i)
                    got += k
                else:
                    self._cur, self._cur_mv, self._pos, self._end = buf, target, 0, k
            self._refill(None, 0)
        except _BlockFailure as exc:
            self._fail()
            raise self._bf.error(exc) from exc.cause
        except BaseException:
            self._fail()
            raise
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
        self._queue.clear()
        self._cur = self._cur_mv = None

    def __enter__(self) -> DecryptSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------

    def _refill(self, out: memoryview | None, got: int) -> None:
        """Keep ``depth`` blocks in flight; those that fit whole in ``out[got:]`` go there."""
        bf = self._bf
        n = len(bf.table)
        if out is None and bf.gcm:
            # GCM deciphers at memory speed: rather than ahead into pool buffers (copied out
            # later), each block waits for the request that tells where it goes
            return
        at: int | None = None
        if out is not None and self._next < n:
            at = got + sum(bf.plain_len(q[0]) for q in self._queue)
        while self._next < n and len(self._queue) < self._depth:
            if self._ex is None:
                self._ex = ThreadPoolExecutor(self._depth, thread_name_prefix="mindckpt-decrypt")
            i = self._next
            dest = None
            split = False
            if at is not None:
                p = bf.plain_len(i)
                n_out = len(cast(memoryview, out))
                if 0 < p and at + p <= n_out:
                    dest = cast(memoryview, out)[at : at + p]
                    at += p
                else:
                    if bf.gcm and 0 < p and at < n_out:
                        # the block starts inside the request and ends past it: its head is
                        # deciphered straight into the caller's buffer, its rest into a pool
                        # buffer (GCM: plaintext and ciphertext positions are the same)
                        dest, split = cast(memoryview, out)[at:], True
                    at = None  # this block and all later ones end past the request
            if dest is None and bf.gcm and self._queue:
                break  # GCM: no block into a pool buffer ahead of need (see above)
            buf = None
            if dest is None or split:
                buf = self._pool.acquire()
            form = bf.guess()
            if split:
                fut = self._ex.submit(bf.decrypt, i, cast(memoryview, dest), form, self._stop,
                                      memoryview(cast(bytearray, buf)))
            else:
                target = dest if dest is not None else memoryview(cast(bytearray, buf))
                fut = self._ex.submit(bf.decrypt, i, target, form, self._stop)
            self._queue.append((i, buf, dest, fut, form))
            self._next += 1

    def _fail(self) -> None:
        """Stop the workers and wait for them (they may write into the caller's buffer)."""
        self._stop.set()
        for q in self._queue:
            q[3].cancel()
        for q in self._queue:
            if not q[3].cancelled():
                _outcome(q[3])
        self.close()


class DecryptByteSource:
    """The plaintext of an encrypted ``.ckpt`` file as a positional byte source.

    ``size`` is the plaintext length; ``readinto(mv, offset)`` and ``pread(n, offset)`` read at
    any offset, decrypting only the blocks that cover the range, each verified (GCM tag, and
    for bound files its file id and position; CBC padding) before its bytes are returned.
    ``src`` is a positional byte source (``size``, ``readinto(mv, offset)``) or a seekable
    binary file object. Thread-safe: concurrent calls are served one at a time.

    Costs:

    * open: every block header is read (48 or 32 bytes per block, batched while blocks are
      small) and checked, as by :class:`DecryptSource`; CBC files also read the last 32
      bytes of each block and decipher one 16-byte cipher block to learn its padding (so that
      ``size`` and block offsets are exact). No payload is decrypted.
    * a read deciphers each block it overlaps in full (up to 64 MiB for a 1-byte read, the
      price of MindSpore's framing) except the cached one: the last block read partially is
      kept (one buffer of the largest block), so sequential small reads decipher each block
      once. Blocks wholly inside the requested range are deciphered straight into the
      caller's buffer, ``workers`` at a time; if one fails the call raises and the buffer
      holds unverified bytes.
    * completeness: a bound file truncated at a block boundary is refused at open (its last
      header lacks the "last block" flag); a forged flag is caught when that block is read.
    """

    def __init__(
        self,
        src: Any,
        key: bytes,
        mode: str = "AES-GCM",
        *,
        path: str = "<stream>",
        workers: int | None = None,
        require_bound: bool = False,
    ):
        self._bf = bf = _BlockFile(src, key, mode, path, require_bound)
        n = len(bf.table)
        if not bf.gcm:
            for i in range(n):
                try:
                    bf.plain_len(i)
                except _BlockFailure as exc:
                    raise bf.error(exc) from exc.cause
        self._starts = array("q", [0])
        self._starts.extend(itertools.accumulate(bf.plain))
        self.size = self._starts[-1]
        self.bound = bf.bound
        self.file_id = bf.file_id
        self.block_count = n
        self.blocks_decrypted = 0  # blocks deciphered so far (a cost counter)
        self._workers = workers if workers and workers > 0 else default_workers()
        self._ex: ThreadPoolExecutor | None = None
        self._lock = threading.RLock()
        self._cache: bytearray | None = None
        self._cache_i = -1
        self._cache_n = 0
        self.closed = False

    def readinto(self, mv, offset: int) -> int:
        """Fill ``mv`` with plaintext from ``offset``; fewer bytes only at the end (0 past it)."""
        out = _byte_view(mv)
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        with self._lock:
            if self.closed:
                raise ValueError("read from a closed DecryptByteSource")
            end = min(offset + len(out), self.size)
            if offset >= end:
                return 0
            starts = self._starts
            first = bisect.bisect_right(starts, offset) - 1
            last = bisect.bisect_left(starts, end)  # blocks first .. last-1 overlap the range
            try:
                self._read_blocks(out, offset, end, range(first, last))
            except _BlockFailure as exc:
                raise self._bf.error(exc) from exc.cause
            return end - offset

    def pread(self, n: int, offset: int) -> bytes:
        """Up to ``n`` plaintext bytes from ``offset`` (fewer only at the end)."""
        buf = bytearray(max(0, min(n, self.size - offset)))
        k = self.readinto(buf, offset)
        return bytes(memoryview(buf)[:k])

    def close(self) -> None:
        with self._lock:
            self.closed = True
            if self._ex is not None:
                self._ex.shutdown(wait=True, cancel_futures=True)
                self._ex = None
            self._cache = None
            self._cache_i = -1

    def __enter__(self) -> DecryptByteSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------

    def _read_blocks(self, out: memoryview, offset: int, end: int, blocks: range) -> None:
        bf, starts = self._bf, self._starts
        whole = [
            i
            for i in blocks
            if starts[i] < starts[i + 1] and offset <= starts[i] and starts[i + 1] <= end
            and i != self._cache_i
        ]
        done = set(whole)
        if bf.form is None and whole:
            # unbound GCM, nothing read yet: settle the IV form on one block, alone
            self._direct(whole[:1], out, offset)
            whole = whole[1:]
        self._direct(whole, out, offset)
        for i in blocks:
            s, e = starts[i], starts[i + 1]
            if i in done or s == e:
                continue  # deciphered in place, or empty
            self._load_cache(i)
            lo, hi = max(s, offset), min(e, end)
            out[lo - offset : hi - offset] = memoryview(cast(bytearray, self._cache))[lo - s : hi - s]

    def _direct(self, blocks: list[int], out: memoryview, offset: int) -> None:
        bf, starts = self._bf, self._starts
        form = bf.guess()
        dests = [out[starts[i] - offset : starts[i + 1] - offset] for i in blocks]
        if len(blocks) > 1 and self._workers > 1:
            if self._ex is None:
                self._ex = ThreadPoolExecutor(self._workers, thread_name_prefix="mindckpt-decrypt")
            futs = [self._ex.submit(bf.decrypt, i, d, form) for i, d in zip(blocks, dests, strict=True)]
            outcomes = [_outcome(f) for f in futs]  # all done before anything is raised
        else:
            outcomes = []
            for i, d in zip(blocks, dests, strict=True):
                outcomes.append(_outcome_of(bf.decrypt, i, d, form))
                if isinstance(outcomes[-1], BaseException):
                    break
        for i, d, oc in zip(blocks, dests, outcomes, strict=False):
            self.blocks_decrypted += 1
            if bf.finish(i, d, oc, form) != len(d):
                raise _BlockFailure("changed", i)

    def _load_cache(self, i: int) -> None:
        if self._cache_i == i:
            return
        bf = self._bf
        if self._cache is None:
            self._cache = bytearray(bf.max_c + SLACK)
        self._cache_i = -1
        mv = memoryview(self._cache)
        form = bf.guess()
        self.blocks_decrypted += 1
        n = bf.finish(i, mv, _outcome_of(bf.decrypt, i, mv, form), form)
        if n != self._starts[i + 1] - self._starts[i]:
            raise _BlockFailure("changed", i)
        self._cache_i, self._cache_n = i, n


def _outcome_of(fn, *args) -> Any:
    try:
        return fn(*args)
    except Exception as exc:
        return exc


# Re-exported for callers that frame files themselves.
MAGIC = MAGICS
