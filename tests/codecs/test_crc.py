"""mindckpt.codecs.crc: every backend and every split equals zlib.crc32."""

from __future__ import annotations

import io
import os
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mindckpt.codecs import crc
from mindckpt.codecs._source import FdSource, as_positional

BACKENDS = crc.available_backends()
BIG = os.urandom(crc.PARALLEL_MIN * 2 + 12345)


def test_backend_is_the_fastest_installed():
    assert crc.BACKEND == next(iter(BACKENDS))
    assert "zlib" in BACKENDS


@pytest.mark.parametrize("name", sorted(BACKENDS))
@settings(max_examples=80, deadline=None)
@given(data=st.binary(max_size=5000), value=st.integers(0, 0xFFFFFFFF), cut=st.integers(0, 5000))
def test_backends_equal_zlib(name, data, value, cut):
    fn, combine = BACKENDS[name]
    assert fn(data, value) == zlib.crc32(data, value)
    a, b = data[:cut], data[cut:]
    assert combine(zlib.crc32(a, value), zlib.crc32(b), len(b)) == zlib.crc32(data, value)


@settings(max_examples=200, deadline=None)
@given(c1=st.integers(0, 0xFFFFFFFF), c2=st.integers(0, 0xFFFFFFFF), n=st.integers(0, 1 << 62))
def test_python_combine_equals_library_combine(c1, c2, n):
    """The GF(2) matrix method against zlib-ng's / ISA-L's C code, lengths up to 2**62."""
    if len(BACKENDS) == 1:
        pytest.skip("neither zlib-ng nor isal is installed (pip install zlib-ng isal)")
    for name, (_, combine) in BACKENDS.items():
        if name != "zlib":
            assert crc.crc32_combine_py(c1, c2, n) == combine(c1, c2, n)


def test_python_combine_without_a_library():
    data = os.urandom(100_000)
    for cut in (0, 1, 7, 4096, 99_999, 100_000):
        a, b = data[:cut], data[cut:]
        assert crc.crc32_combine_py(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(data)
    with pytest.raises(ValueError, match="len2"):
        crc.crc32_combine_py(0, 0, -1)


@pytest.mark.parametrize("threads", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("value", [0, 0xDEADBEEF])
def test_parallel_equals_zlib(threads, value):
    ref = zlib.crc32(BIG, value)
    assert crc.crc32_parallel(BIG, value, threads=threads) == ref
    assert crc.crc32(BIG, value) == ref
    mv = memoryview(BIG)[3:]
    assert crc.crc32_parallel(mv, value, threads=threads) == zlib.crc32(mv, value)


def test_parallel_small_and_odd_inputs():
    import numpy as np

    arr = np.arange(10_000, dtype=np.float32).reshape(100, 100)
    assert crc.crc32_parallel(arr) == zlib.crc32(arr.tobytes())
    assert crc.crc32_parallel(b"") == 0
    with pytest.raises(TypeError, match="contiguous"):
        crc.crc32_parallel(arr[:, ::2])
    with pytest.raises(ValueError, match="threads"):
        crc.crc32_parallel(b"x", threads=0)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=3000), off=st.integers(0, 3000), n=st.integers(0, 3000),
       chunk=st.integers(1, 700), value=st.integers(0, 0xFFFFFFFF))
def test_crc32_source_region(data, off, n, chunk, value):
    src = as_positional(io.BytesIO(data))
    if off + n > len(data):
        with pytest.raises(EOFError, match="past the end"):
            crc.crc32_source(src, off, n, value, chunk=chunk)
        return
    assert crc.crc32_source(src, off, n, value, chunk=chunk) == zlib.crc32(data[off : off + n], value)
    assert crc.crc32_source(src, off, None, chunk=chunk) == zlib.crc32(data[off:])


def test_crc32_source_threads_on_a_file(tmp_path):
    p = tmp_path / "big.bin"
    p.write_bytes(BIG)
    fd = os.open(p, os.O_RDONLY)
    try:
        src = FdSource(fd)
        for threads in (1, 2, 4):
            assert crc.crc32_source(src, threads=threads) == zlib.crc32(BIG)
            assert crc.crc32_source(src, 5, len(BIG) - 9, 7, threads=threads) == zlib.crc32(
                BIG[5:-4], 7
            )
        with pytest.raises(EOFError, match="past the end"):
            crc.crc32_source(src, 10, len(BIG), threads=2)
        src.size += 100  # the file is shorter than its source claims: found while reading
        with pytest.raises(EOFError, match="ended at byte"):
            crc.crc32_source(src, 10, len(BIG), threads=2)
    finally:
        os.close(fd)


def test_crc_sink_counts_what_was_written():
    class Trickle:
        def __init__(self):
            self.data = bytearray()
            self.closed = False

        def write(self, b):
            k = min(len(b), 10)
            self.data += bytes(b[:k])
            return k

        def close(self):
            self.closed = True

    t = Trickle()
    sink = crc.CrcSink(t)
    payload = os.urandom(1000)
    pos = 0
    while pos < len(payload):
        pos += sink.write(payload[pos:])
    assert sink.crc == zlib.crc32(payload) and sink.nbytes == 1000 and bytes(t.data) == payload
    sink.flush()
    sink.close()
    assert t.closed
    out = io.BytesIO()
    s2 = crc.CrcSink(out, value=zlib.crc32(b"head"))
    s2.write(memoryview(b"tail"))
    assert s2.crc == zlib.crc32(b"headtail") and out.getvalue() == b"tail"


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_parallel_with_each_backend(name):
    assert crc.crc32_parallel(BIG, 5, threads=3, backend=name) == zlib.crc32(BIG, 5)
    with pytest.raises(ValueError, match="not installed"):
        crc.crc32_parallel(BIG, backend="nope")


def test_crc_source_counts_what_was_read():
    payload = os.urandom(5000)
    src = crc.CrcSource(io.BytesIO(payload), value=zlib.crc32(b"pre"))
    got = bytearray()
    buf = bytearray(333)
    while k := src.readinto(buf):
        got += buf[:k]
    assert bytes(got) == payload and src.nbytes == 5000
    assert src.crc == zlib.crc32(b"pre" + payload)
    assert src.read(10) == b""
    src.close()
    assert src.raw.closed
