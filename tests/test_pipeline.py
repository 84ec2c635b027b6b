"""The pipeline's read paths: mapped (zero-copy) loads, their safety, in-place loads."""

from __future__ import annotations

import mmap as _mmap

import numpy as np
import pytest

import mindckpt as ms


def _base(arr):
    b = arr
    while getattr(b, "base", None) is not None and not isinstance(b, (_mmap.mmap, memoryview)):
        b = b.base
    return b


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((64, 33)).astype(np.float32),
            "b": rng.integers(0, 9, (33,)).astype(np.int64),
            "s": np.array(3, np.int32)}


@pytest.mark.parametrize("fmt,mmap", [("safetensors", None), ("ckpt", True)])
def test_mapped_load_no_copy_and_survives_replace(tmp_path, fmt, mmap):
    path = str(tmp_path / f"m.{fmt}")
    first = _data(0)
    ms.save_checkpoint(first, path, format=fmt)
    loaded = ms.load_checkpoint(path, format=fmt, mmap=mmap)
    arr = loaded["w"].asnumpy()
    assert not arr.flags.owndata  # a view of the mapping, not a copy
    # the file is replaced atomically by a new save: what was loaded does not change
    ms.save_checkpoint(_data(1), path, format=fmt)
    np.testing.assert_array_equal(arr, first["w"])
    np.testing.assert_array_equal(loaded["b"].asnumpy(), first["b"])
    np.testing.assert_array_equal(ms.load_checkpoint(path, format=fmt)["w"].asnumpy(),
                                  _data(1)["w"])


@pytest.mark.parametrize("fmt,mmap", [("safetensors", None), ("ckpt", True)])
def test_mapped_array_writes_never_reach_the_file(tmp_path, fmt, mmap):
    path = str(tmp_path / f"m.{fmt}")
    ms.save_checkpoint(_data(), path, format=fmt)
    before = open(path, "rb").read()
    loaded = ms.load_checkpoint(path, format=fmt, mmap=mmap)
    arr = loaded["w"].asnumpy()
    assert arr.flags.writeable
    arr[:] = 7.0  # copy-on-write: private to this process
    assert (arr == 7.0).all()
    assert open(path, "rb").read() == before
    again = ms.load_checkpoint(path, format=fmt, mmap=mmap)
    np.testing.assert_array_equal(again["w"].asnumpy(), _data()["w"])


@pytest.mark.parametrize("fmt", ["safetensors", "ckpt"])
def test_mapped_and_read_loads_agree(tmp_path, fmt):
    path = str(tmp_path / f"m.{fmt}")
    data = _data()
    if fmt == "ckpt":
        data["note"] = "text"
    ms.save_checkpoint(data, path, format=fmt, crc_check=True)
    a = ms.load_checkpoint(path, format=fmt, mmap=True, crc_check=True)
    b = ms.load_checkpoint(path, format=fmt, mmap=False, crc_check=True)
    assert list(a) == list(b)
    for k in a:
        if isinstance(a[k], str):
            assert a[k] == b[k]
        else:
            assert a[k].dtype == b[k].dtype
            np.testing.assert_array_equal(a[k].asnumpy(), b[k].asnumpy())


@pytest.mark.parametrize("fmt", ["safetensors", "ckpt"])
def test_mapped_crc_detects_flip(tmp_path, fmt):
    path = str(tmp_path / f"m.{fmt}")
    ms.save_checkpoint(_data(), path, format=fmt, crc_check=True)
    raw = bytearray(open(path, "rb").read())
    with ms.open_checkpoint(path) as f:
        raw[f.index["w"].spans[0].offset + 5] ^= 0x10
    bad = tmp_path / f"bad.{fmt}"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ms.ChecksumError):
        ms.load_checkpoint(str(bad), format=fmt, mmap=True, crc_check=True)


def test_load_into_torch_module_in_place(tmp_path):
    torch = pytest.importorskip("torch")
    src = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2))
    for fmt in ("ckpt", "safetensors"):
        path = str(tmp_path / f"t.{fmt}")
        ms.save_checkpoint(src, path, format=fmt)
        dst = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2))
        ptr = dst[0].weight.data_ptr()
        ms.load_checkpoint(path, net=dst, format=fmt)
        assert dst[0].weight.data_ptr() == ptr  # the module's own memory was filled
        for (k, v), (_, w) in zip(src.state_dict().items(), dst.state_dict().items(),
                                  strict=True):
            assert torch.equal(v, w), k


def test_failed_load_into_module_changes_nothing(tmp_path):
    torch = pytest.importorskip("torch")
    src = {"0.weight": torch.ones(4, 8), "0.bias": torch.ones(4), "1.weight": torch.ones(3, 4)}
    path = str(tmp_path / "bad.ckpt")
    ms.save_checkpoint(src, path)
    dst = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2))
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(RuntimeError, match="same shape"):
        ms.load_checkpoint(path, net=dst)
    for k, v in dst.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("fmt", ["ckpt", "safetensors"])
def test_read_region_into_out(tmp_path, fmt):
    from mindckpt.pipeline import open_file
    from mindckpt.storage.local import LOCAL

    path = str(tmp_path / f"r.{fmt}")
    w = _data(0)["w"]
    ms.save_checkpoint({"w": w}, path, format=fmt)
    box = ((3, 40), (5, 20))  # a column slice: one run per row
    with open_file(LOCAL, path, format=fmt) as r:
        out = np.full((37, 15), -1, np.float32)
        assert r.read_region("w", box, out=out) is out
        np.testing.assert_array_equal(out, w[3:40, 5:20])
        np.testing.assert_array_equal(r.read_region("w", box), w[3:40, 5:20])
        for bad in (np.empty((37, 15), np.float64), np.empty((15, 37), np.float32),
                    np.empty((37, 30), np.float32)[:, ::2]):
            with pytest.raises(ValueError, match="out must be"):
                r.read_region("w", box, out=bad)
