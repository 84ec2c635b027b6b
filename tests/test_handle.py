"""open_checkpoint: scan-then-read over every file kind; only the needed bytes are read."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mindckpt as ms
from mindckpt.errors import ChecksumError
from mindckpt.formats import ckpt as C
from mindckpt.pipeline import open_file
from mindckpt.storage.local import FileSource, LocalStore

KEY = b"0123456789abcdef"


class CountingStore(LocalStore):
    """A local store that counts the bytes its sources hand out."""

    def __init__(self):
        self.read = 0

    def open_read(self, key):
        src = super().open_read(key)
        store = self

        class Counting(FileSource):
            def readinto_at(self, mv, offset):
                n = super().readinto_at(mv, offset)
                store.read += n
                return n

        fd, src.fd = src.fd, None
        return Counting(key, fd, src.size)


def _model():
    rng = np.random.default_rng(0)
    return {
        "a.w": rng.standard_normal((7, 5)).astype(np.float32),
        "b.w": rng.integers(-9, 9, (3, 4, 6)).astype(np.int16),
        "scalar": np.array(2.5, np.float64),
        "empty": np.zeros((0, 4), np.float32),
        "note": "hello",
    }


def _save(tmp_path, fmt="ckpt", **kw):
    data = _model()
    if fmt == "safetensors":
        data.pop("note")
    path = str(tmp_path / f"m.{fmt}")
    ms.save_checkpoint(data, path, format=fmt, **kw)
    return path, data


@pytest.mark.parametrize("kind", ["plain", "crc", "gcm", "cbc", "safetensors"])
def test_keys_and_values(tmp_path, kind):
    kw: dict = {}
    open_kw: dict = {}
    fmt = "safetensors" if kind == "safetensors" else "ckpt"
    if kind == "crc":
        kw = open_kw = {"crc_check": True}
    if kind in ("gcm", "cbc"):
        mode = "AES-GCM" if kind == "gcm" else "AES-CBC"
        kw = {"enc_key": KEY, "enc_mode": mode}
        open_kw = {"dec_key": KEY}  # the mode is read from the file
    with pytest.warns(UserWarning) if kind == "cbc" else _nothing():
        path, data = _save(tmp_path, fmt, **kw)
    with ms.open_checkpoint(path, **open_kw) as f:
        names = set(data)
        assert set(f.keys()) == names
        for name, want in data.items():
            got = f.get_tensor(name)
            if isinstance(want, str):
                assert got == want
            else:
                assert got.dtype == want.dtype and got.shape == want.shape
                np.testing.assert_array_equal(got, want)
        assert f.index["b.w"].shape == (3, 4, 6)
        assert f.index["b.w"].dtype is ms.int16
        np.testing.assert_array_equal(f.get_slice("b.w")[1:3, :, 2:5], data["b.w"][1:3, :, 2:5])
        np.testing.assert_array_equal(f.get_slice("a.w")[4], data["a.w"][4])


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_frameworks(tmp_path):
    import torch

    path, data = _save(tmp_path)
    with ms.open_checkpoint(path, framework="pt") as f:
        t = f.get_tensor("a.w")
        assert isinstance(t, torch.Tensor)
        assert torch.equal(t, torch.from_numpy(data["a.w"]))
    with ms.open_checkpoint(path, framework="ms") as f:
        p = f.get_tensor("a.w")
        assert isinstance(p, ms.Parameter) and p.name == "a.w"


def test_write_result_index_matches_scan(tmp_path):
    from mindckpt.collect import collect
    from mindckpt.pipeline import write_file
    from mindckpt.storage.local import LOCAL

    for fmt in ("ckpt", "safetensors"):
        data = _model()
        data.pop("note")
        path = str(tmp_path / f"w.{fmt}")
        result = write_file(LOCAL, path, collect(data), fmt=fmt, crc_check=True)
        with open_file(LOCAL, path) as r:
            scanned = r.index
        assert {e.name: (e.dtype, e.shape, e.spans) for e in result.index} == {
            e.name: (e.dtype, e.shape, e.spans) for e in scanned}
        assert result.index.crc == scanned.crc
        assert result.bytes_written == scanned.size


def test_scan_reads_headers_only_and_get_tensor_reads_its_span(tmp_path):
    rng = np.random.default_rng(1)
    data = {f"layer{i}.w": rng.standard_normal((256, 256)).astype(np.float32) for i in range(40)}
    for fmt in ("ckpt", "safetensors"):
        path = str(tmp_path / f"big.{fmt}")
        ms.save_checkpoint(data, path, format=fmt)
        store = CountingStore()
        with open_file(store, path) as r:
            assert len(r.index) == 40
            assert store.read < 64 * 1024, store.read  # 10 MiB file, headers only
            before = store.read
            got = r.read_entry("layer7.w")
            np.testing.assert_array_equal(got, data["layer7.w"])
            assert store.read - before == 256 * 256 * 4
            before = store.read
            part = r.read_region("layer9.w", ((10, 20), (0, 256)))
            np.testing.assert_array_equal(part, data["layer9.w"][10:20])
            assert store.read - before == 10 * 256 * 4


@pytest.mark.slow
def test_open_1gib_reads_under_1mib(tmp_path):
    """The issue's check: list every entry of a 1 GiB file reading under 1 MiB of it."""
    n = 256
    block = np.zeros(1 << 20, np.float32)  # 4 MiB each, 256 of them: 1 GiB
    path = str(tmp_path / "g.ckpt")
    ms.save_checkpoint({f"t{i}": block for i in range(n)}, path)
    store = CountingStore()
    with open_file(store, path) as r:
        assert len(r.index) == n
        assert store.read < 1 << 20
        before = store.read
        assert r.read_entry("t100").shape == (1 << 20,)
        assert store.read - before == 4 << 20


def test_multi_span_entries_and_regions(tmp_path, monkeypatch):
    """Tensors cut into several records (MindSpore's 512 MiB rule, made small) read by region."""
    monkeypatch.setattr(C, "SLICE_BYTES", 1000)
    a = np.arange(60 * 70, dtype=np.float32).reshape(60, 70)
    for split in ("bytes", "rows"):
        path = str(tmp_path / f"s_{split}.ckpt")
        from mindckpt.collect import collect
        from mindckpt.pipeline import write_file
        from mindckpt.storage.local import LOCAL

        result = write_file(LOCAL, path, collect({"a": a}), split=split)
        if split == "bytes":
            assert len(result.index["a"].spans) == 17
        with open_file(LOCAL, path) as r:
            np.testing.assert_array_equal(r.read_entry("a"), a)
            np.testing.assert_array_equal(r.read_region("a", ((5, 50), (3, 66))), a[5:50, 3:66])


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), data=st.data())
def test_region_property(tmp_path_factory, shape, data):
    a = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    box = []
    for d in shape:
        lo = data.draw(st.integers(0, d))
        hi = data.draw(st.integers(lo, d))
        box.append((lo, hi))
    path = str(tmp_path_factory.mktemp("r") / "r.ckpt")
    ms.save_checkpoint({"a": a}, path)
    with ms.open_checkpoint(path) as f:
        got = f._reader.read_region("a", tuple(box))
    np.testing.assert_array_equal(got, a[tuple(slice(lo, hi) for lo, hi in box)])


def test_crc_check_on_open_detects_flip(tmp_path):
    for fmt in ("ckpt", "safetensors"):
        path, _ = _save(tmp_path, fmt, crc_check=True)
        raw = bytearray(open(path, "rb").read())
        with ms.open_checkpoint(path) as f:
            raw[f.index["a.w"].spans[0].offset + 3] ^= 0x01  # inside a payload
        bad = tmp_path / f"bad.{fmt}"
        bad.write_bytes(bytes(raw))
        with ms.open_checkpoint(str(bad)) as f:  # no check asked: opens
            assert len(f) >= 4
        with pytest.raises(ChecksumError):
            ms.open_checkpoint(str(bad), crc_check=True)


def test_errors(tmp_path):
    path, _ = _save(tmp_path)
    with pytest.raises(ms.CheckpointNotFoundError):
        ms.open_checkpoint(str(tmp_path / "nope.ckpt"))
    with ms.open_checkpoint(path) as f:
        with pytest.raises(KeyError, match="no entry 'zz'"):
            f.get_tensor("zz")
        with pytest.raises(ValueError, match="not inside"):
            f._reader.read_region("a.w", ((0, 8), (0, 5)))
        with pytest.raises(TypeError, match="not a tensor"):
            f.get_slice("note")
    with pytest.raises(ValueError, match="framework"):
        ms.open_checkpoint(path, framework="jax")
    enc = str(tmp_path / "e.ckpt")
    ms.save_checkpoint(_model(), enc, enc_key=KEY)
    with pytest.raises(ms.DecryptionError, match="encrypted with AES-GCM"):
        ms.open_checkpoint(enc)
    with pytest.raises(ms.DecryptionError):
        ms.open_checkpoint(enc, dec_key=b"f" * 16).get_tensor("a.w")


def test_strict_integrity_refuses_unbound_files(tmp_path):
    """MindSpore-written GCM files carry no order binding; strict mode refuses them."""
    from pathlib import Path

    golden = Path(__file__).parent / "golden" / "files" / "enc_aes_gcm_k16.ckpt"
    key = bytes(range(16))  # the golden manifest's key for this file
    ms.load_checkpoint(str(golden), dec_key=key)  # MindSpore's file loads by default
    with pytest.raises(ms.DecryptionError):
        ms.load_checkpoint(str(golden), dec_key=key, strict_integrity=True)
    ours = str(tmp_path / "ours.ckpt")
    ms.save_checkpoint({"w": np.ones(3, np.float32)}, ours, enc_key=KEY)
    assert ms.load_checkpoint(ours, dec_key=KEY, strict_integrity=True)["w"].shape == (3,)
    with ms.open_checkpoint(ours, dec_key=KEY, strict_integrity=True) as f:
        assert f.get_tensor("w").shape == (3,)


def test_region_reads_coalesce_small_gaps_but_never_overread(tmp_path):
    a = np.arange(512 * 1024, dtype=np.float32).reshape(512, 1024)
    path = str(tmp_path / "cols.ckpt")
    ms.save_checkpoint({"a": a}, path)
    for box, bound in (
        (((0, 512), (0, 1020)), 1.05),   # 16-byte gaps between 4 KiB runs: merged, <= 5% more
        (((0, 512), (0, 512)), 1.0),     # half-row runs, half-row gaps: never merged
        (((3, 300), (100, 101)), 1.05),  # one column: 4-byte runs, each read alone or merged
    ):
        store = CountingStore()
        with open_file(store, path) as r:
            r.index  # noqa: B018 - scan first
            before = store.read
            got = r.read_region("a", box)
            np.testing.assert_array_equal(got, a[box[0][0]:box[0][1], box[1][0]:box[1][1]])
            assert store.read - before <= bound * got.nbytes + 1, (box, store.read - before)
