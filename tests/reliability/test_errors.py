"""Save errors that tell the truth (issue 13 point 9, the formats' part): the error names the
parameter and the target, says the real cause, comes before any byte is written, and no
blanket "permission or disk space" message is logged for causes that are neither."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

import mindckpt as ms
from mindckpt.errors import MissingDirectoryError
from mindckpt.storage.local import TEMP_PATTERN

torch = pytest.importorskip("torch")

BLANKET = "Maybe don't have the permission"


def bad_values():
    yield "meta", torch.empty(3, device="meta"), "meta"
    yield "sparse", torch.eye(3).to_sparse(), "sparse"
    yield "complex", np.ones(2, np.complex64), "complex64"


@pytest.mark.parametrize("fmt", ["ckpt", "safetensors"])
@pytest.mark.parametrize("case", ["meta", "sparse", "complex"])
def test_unsavable_values_are_refused_before_writing(tmp_path, caplog, fmt, case):
    name, value, cause = next(v for v in bad_values() if v[0] == case)
    target = tmp_path / f"m.{fmt}"
    ms.save_checkpoint({"ok": ms.Parameter(ms.Tensor(np.ones(2, np.float32)))}, str(target),
                       format=fmt)
    before = target.read_bytes()
    d = {"ok": ms.Parameter(ms.Tensor(np.ones(2, np.float32))), "bad.param": value}
    with caplog.at_level(logging.DEBUG, logger="mindckpt"), pytest.raises((TypeError, ValueError)) as ei:
        ms.save_checkpoint(d, str(target), format=fmt)
    msg = str(ei.value)
    assert "'bad.param'" in msg and str(target) in msg and cause in msg, msg
    assert BLANKET not in caplog.text
    assert target.read_bytes() == before
    assert not [n for n in os.listdir(tmp_path) if TEMP_PATTERN.match(n)]


def test_str_value_for_safetensors_names_the_parameter(tmp_path, caplog):
    with caplog.at_level(logging.DEBUG, logger="mindckpt"), pytest.raises(TypeError) as ei:
        ms.save_checkpoint({"w": ms.Parameter(ms.Tensor(np.ones(2, np.float32))), "note": "hi"},
                           str(tmp_path / "s"), format="safetensors")
    assert "'note'" in str(ei.value) and "format='ckpt'" in str(ei.value)
    assert BLANKET not in caplog.text
    assert os.listdir(tmp_path) == []


def test_float8_round_trips_or_names_the_parameter(tmp_path):
    t = torch.ones(4).to(torch.float8_e4m3fn)
    for fmt in ("ckpt", "safetensors"):
        p = str(tmp_path / f"f8.{fmt}")
        try:
            ms.save_checkpoint({"f8": t}, p, format=fmt)
        except (TypeError, ValueError) as exc:
            assert "'f8'" in str(exc) and p in str(exc), exc
            assert not os.path.exists(p)
            continue
        got = ms.load_checkpoint(p, format=fmt)["f8"]
        assert got.asnumpy().astype(np.float32).tolist() == [1.0] * 4


def test_missing_directory_is_named_by_the_target_not_the_temp_file(tmp_path, caplog):
    target = tmp_path / "no" / "such" / "m.ckpt"
    with caplog.at_level(logging.DEBUG, logger="mindckpt"), \
            pytest.raises(MissingDirectoryError) as ei:
        ms.save_checkpoint({"w": ms.Parameter(ms.Tensor(np.ones(2, np.float32)))}, str(target))
    msg = str(ei.value)
    assert str(target) in msg and ".tmp" not in msg and "does not exist" in msg, msg
    assert ".tmp" not in caplog.text
