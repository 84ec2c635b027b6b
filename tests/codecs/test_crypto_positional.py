"""DecryptByteSource (positional plaintext reads) and positional inputs for both readers."""

from __future__ import annotations

import io
import os
import random
import threading
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mindckpt.codecs._source import FdSource, as_positional, read_full
from mindckpt.codecs.crypto import MODES, DecryptByteSource, DecryptSource, EncryptSink
from mindckpt.errors import DecryptionError
from cipher_files import ms_encrypt

BLOCK = 1000
KEY = bytes(range(16))


def encrypt(data: bytes, mode: str, block: int = BLOCK) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sink = EncryptSink(out, KEY, mode, block_size=block, workers=2)
    sink.write(data)
    sink.close()
    return out.getvalue()


class Trickle:
    """A positional source (the storage ByteSource shape) that returns short reads."""

    def __init__(self, raw: bytes, seed: int = 0):
        self.raw = raw
        self.size = len(raw)
        self.calls = 0
        self.bytes_read = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def readinto(self, mv, offset: int) -> int:
        with self._lock:
            self.calls += 1
            n = min(len(mv), self.size - offset, self._rng.randint(1, 700))
        n = max(n, 0)
        mv[:n] = self.raw[offset : offset + n]
        with self._lock:
            self.bytes_read += n
        return n


PLAIN = os.urandom(7 * BLOCK + 333)
FILES = {
    "ours-gcm": (encrypt(PLAIN, "AES-GCM"), "AES-GCM"),
    "ms-gcm": (ms_encrypt(PLAIN, block=BLOCK, key=KEY), "AES-GCM"),
    "ms-gcm-legacy": (ms_encrypt(PLAIN, block=BLOCK, key=KEY, legacy=True), "AES-GCM"),
    "aes-cbc": (encrypt(PLAIN, "AES-CBC"), "AES-CBC"),
    "sm4-cbc": (encrypt(PLAIN, "SM4-CBC"), "SM4-CBC"),
    "ms-cbc": (ms_encrypt(PLAIN, "AES-CBC", block=BLOCK, key=KEY), "AES-CBC"),
}


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(sorted(FILES)),
    reads=st.lists(st.tuples(st.integers(0, len(PLAIN) + 50), st.integers(0, 3 * BLOCK)),
                   min_size=1, max_size=8),
    trickle=st.booleans(),
)
def test_random_reads_match_plaintext(kind, reads, trickle):
    raw, mode = FILES[kind]
    src = Trickle(raw) if trickle else io.BytesIO(raw)
    with DecryptByteSource(src, KEY, mode, path="r.ckpt", workers=2) as d:
        assert d.size == len(PLAIN)
        for off, n in reads:
            assert d.pread(n, off) == PLAIN[off : off + n]
            buf = bytearray(n)
            k = d.readinto(memoryview(buf), off)
            assert bytes(buf[:k]) == PLAIN[off : off + n]


def test_only_covering_blocks_are_decrypted_and_last_one_cached():
    raw, mode = FILES["ours-gcm"]
    src = Trickle(raw)
    with DecryptByteSource(src, KEY, mode, workers=2) as d:
        assert d.block_count == 8 and d.blocks_decrypted == 0
        assert d.pread(10, 2 * BLOCK + 5) == PLAIN[2 * BLOCK + 5 : 2 * BLOCK + 15]
        assert d.blocks_decrypted == 1
        before = src.bytes_read
        for o in range(2 * BLOCK, 3 * BLOCK, 100):  # same block: served from the cache
            assert d.pread(100, o) == PLAIN[o : o + 100]
        assert d.blocks_decrypted == 1 and src.bytes_read == before
        # blocks 4 and 5 whole (direct, in parallel) + parts of 3 and 6
        assert d.pread(3 * BLOCK, 3 * BLOCK + 500) == PLAIN[3 * BLOCK + 500 : 6 * BLOCK + 500]
        assert d.blocks_decrypted == 5
        assert d.pread(1, d.size - 1) == PLAIN[-1:]
        assert d.blocks_decrypted == 6


def test_open_reads_only_headers_of_large_blocks():
    block = 100_000
    data = os.urandom(4 * block + 7)
    # GCM: 5 headers; CBC: 5 headers + the padding probes (32 bytes, 16 for a 1-cipher-block block)
    for mode, opened in (("AES-GCM", 5 * 48), ("AES-CBC", 5 * 32 + 4 * 32 + 16)):
        src = Trickle(encrypt(data, mode, block))
        with DecryptByteSource(src, KEY, mode) as d:
            assert src.bytes_read == opened
            assert d.size == len(data) and d.blocks_decrypted == 0
            assert d.pread(5, 2 * block - 2) == data[2 * block - 2 : 2 * block + 3]
            assert d.blocks_decrypted == 2


def test_sequential_small_reads_decrypt_each_block_once():
    raw, mode = FILES["aes-cbc"]
    with DecryptByteSource(io.BytesIO(raw), KEY, mode) as d:
        out = b"".join(d.pread(64, o) for o in range(0, d.size, 64))
        assert out == PLAIN and d.blocks_decrypted == 8


def test_bounds_and_close():
    raw, mode = FILES["ours-gcm"]
    d = DecryptByteSource(io.BytesIO(raw), KEY, mode)
    assert d.pread(10, d.size) == b"" and d.pread(10, d.size + 99) == b""
    assert d.readinto(bytearray(0), 0) == 0
    with pytest.raises(ValueError, match="offset"):
        d.readinto(bytearray(4), -1)
    d.close()
    with pytest.raises(ValueError, match="closed"):
        d.pread(1, 0)
    empty = DecryptByteSource(io.BytesIO(b""), KEY)
    assert empty.size == 0 and empty.pread(5, 0) == b""


def test_real_file_fd_path_and_threads(tmp_path):
    raw, mode = FILES["ours-gcm"]
    p = tmp_path / "x.ckpt"
    p.write_bytes(raw)
    fd = os.open(p, os.O_RDONLY)
    try:
        d = DecryptByteSource(FdSource(fd), KEY, mode, path=str(p))
        errors = []

        def worker(seed):
            rng = random.Random(seed)
            try:
                for _ in range(40):
                    o, n = rng.randrange(len(PLAIN)), rng.randrange(3 * BLOCK)
                    assert d.pread(n, o) == PLAIN[o : o + n]
            except BaseException as exc:  # reported below
                errors.append(exc)

        ts = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors
        d.close()
    finally:
        os.close(fd)
    with open(p, "rb") as f:  # a file object: adapted to os.preadv
        assert isinstance(as_positional(f), FdSource)
        with DecryptByteSource(f, KEY, mode) as d:
            assert d.pread(len(PLAIN), 0) == PLAIN


@pytest.mark.parametrize("kind", sorted(FILES))
def test_decrypt_source_accepts_positional_sources(kind):
    raw, mode = FILES[kind]
    for bufsize in (1, 333, BLOCK, 4 * BLOCK, len(PLAIN) + 10):
        with DecryptSource(Trickle(raw, bufsize), KEY, mode, workers=2) as src:
            out = bytearray()
            buf = bytearray(bufsize)
            while k := src.readinto(buf):
                out += buf[:k]
        assert out == PLAIN


def test_tamper_in_the_middle_of_a_direct_read_raises_and_stops():
    raw = bytearray(FILES["ours-gcm"][0])
    raw[5 * (BLOCK + 48) + 100] ^= 1  # block 5 payload
    for cls in ("stream", "random"):
        buf = bytearray(len(PLAIN))
        with pytest.raises(DecryptionError, match=r"t\.ckpt.*block 5 .*authentication failed"):
            if cls == "stream":
                with DecryptSource(io.BytesIO(bytes(raw)), KEY, path="t.ckpt", workers=4) as s:
                    s.readinto(buf)
            else:
                with DecryptByteSource(io.BytesIO(bytes(raw)), KEY, path="t.ckpt", workers=4) as s:
                    s.readinto(buf, 0)
        assert threading.active_count() < 20


def test_file_shrinking_while_reading_is_reported():
    raw, mode = FILES["ours-gcm"]

    class Shrinking(Trickle):
        cut = False

        def readinto(self, mv, offset):
            if self.cut and offset >= len(self.raw) // 2:
                return 0  # after the scan, the second half of the file is gone
            return super().readinto(mv, offset)

    src = Shrinking(raw)
    with DecryptByteSource(src, KEY, mode, path="s.ckpt") as d:
        src.cut = True
        with pytest.raises(DecryptionError, match=r"s\.ckpt.*block \d+.*shorter"):
            d.pread(len(PLAIN), 0)


def test_read_full_loops_over_short_reads():
    t = Trickle(b"abcdefghij" * 100)
    buf = bytearray(1000)
    assert read_full(t, memoryview(buf), 0) == 1000 and bytes(buf) == t.raw
    assert read_full(t, memoryview(buf), 990) == 10
    with pytest.raises(TypeError, match="positional byte source"):
        as_positional(object())


@pytest.mark.parametrize("mode", MODES)
def test_wrong_key_is_reported_at_open_or_first_read(mode):
    raw = encrypt(PLAIN, mode)
    with pytest.raises(DecryptionError, match="dec_key is wrong"):
        with DecryptByteSource(io.BytesIO(raw), bytes(16), mode, path="k.ckpt") as d:
            d.pread(10, 0)
