"""mindckpt.state: nested training state <-> flat typed entries, exact round trips, MindSpore loads."""

from __future__ import annotations

import json
import random

import ml_dtypes
import ms_oracle
import numpy as np
import pytest

import mindckpt as ms
from mindckpt.errors import FormatError
from mindckpt.state import flatten_state, unflatten_state

torch = pytest.importorskip("torch")


def same(a, b):
    """Exact equality, types included, recursively (tensors bitwise, with dtype)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.cpu(), b.cpu())
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, float) and a != a:
        return b != b
    return a == b and (not isinstance(a, np.generic) or a.dtype == b.dtype)


def training_state():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
        sched.step()
    random.seed(7)
    np.random.seed(7)
    return {
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "numpy_pcg": np.random.default_rng(3).bit_generator.state,
            "torch": torch.get_rng_state(),
        },
        "loop": {"epoch": 2, "step": 17, "done": True, "loss": float("nan"), "note": None},
    }


ODD = {
    "ints": {0: "zero", 1: "one", -5: "minus"},
    "tuple_of_tuples": ((1, 2), (3.5,), ()),
    "mixed": [1, 2.0, True, None, "s", b"\x00\xff", (None,)],
    "big": 1 << 100,
    "neg_big": -(1 << 70),
    "empty": {},
    "empty_list": [],
    "np_scalars": [np.float32(1.5), np.int16(-3), np.bool_(True)],
    "arrays": [np.zeros((0, 3), np.float16), np.array(2.5, ml_dtypes.bfloat16), np.arange(6).reshape(2, 3)],
    "tensors": [torch.zeros(2, dtype=torch.bfloat16), torch.tensor(3, dtype=torch.int64), torch.ones(0)],
    "bools": [True, False],
    "floats": (0.1, -0.0, float("inf")),
}


@pytest.mark.parametrize("obj", [ODD, [1, 2, 3], (None, "x")], ids=["odd", "list", "tuple"])
def test_round_trip_in_memory_exact(obj):
    flat = flatten_state(obj)
    assert "__schema__" in flat
    assert same(unflatten_state(flat), obj)


def test_names_are_mindspore_style_and_flat():
    st = training_state()
    flat = flatten_state(st["optimizer"], "optimizer")
    assert "optimizer.state.0.exp_avg" in flat and "optimizer.state.0.step" in flat
    assert "optimizer.param_groups.0.lr" in flat
    # a tuple of floats is one Float64 array, python's RNG state one Int64 array
    assert flat["optimizer.param_groups.0.betas"].dtype == np.float64
    rng = flatten_state(st["rng"], "rng")
    assert rng["rng.python.1"].shape == (625,) and rng["rng.python.1"].dtype == np.int64
    assert rng["rng.numpy_pcg.state.state"] == str(st["rng"]["numpy_pcg"]["state"]["state"])  # 128-bit
    assert all(isinstance(v, (str, np.ndarray, torch.Tensor)) for v in flat.values())
    assert json.loads(flat["optimizer.__schema__"])["v"] == 1


@pytest.mark.parametrize("fmt", ["ckpt", "safetensors"])
def test_round_trip_through_files_exact(tmp_path, fmt):
    st = training_state()
    model = torch.nn.Linear(3, 2)
    flat = dict(model.state_dict())
    for key in ("optimizer", "scheduler", "scaler", "rng", "loop"):
        flat.update(flatten_state(st[key], key, text_as_bytes=fmt == "safetensors"))
    path = str(tmp_path / f"state.{fmt}")
    ms.save_checkpoint(flat, path, format=fmt, append_dict={"epoch_num": 2})
    if fmt == "safetensors":
        assert flat["optimizer.__schema__"].dtype == np.uint8
    loaded = ms.load_checkpoint(path, format=fmt)
    back = unflatten_state(loaded)
    if fmt == "ckpt":
        assert list(back)[:2] == ["weight", "bias"]  # file order kept
    for key in ("optimizer", "scheduler", "scaler", "rng", "loop"):
        assert same(back[key], st[key]), key
    assert int(back["epoch_num"].asnumpy()) == 2
    # the restored state drives torch exactly
    opt = torch.optim.AdamW(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
                                                torch.nn.Linear(8, 2)).parameters())
    opt.load_state_dict(back["optimizer"])
    assert same(opt.state_dict(), st["optimizer"])
    random.setstate(back["rng"]["python"])
    np.random.set_state(back["rng"]["numpy"])
    torch.set_rng_state(back["rng"]["torch"])
    draws = (random.random(), np.random.rand(), torch.rand(1))
    random.setstate(st["rng"]["python"])
    np.random.set_state(st["rng"]["numpy"])
    torch.set_rng_state(st["rng"]["torch"])
    assert same(draws, (random.random(), np.random.rand(), torch.rand(1)))


def test_refusals():
    with pytest.raises(TypeError, match=r"keys must be str or int"):
        flatten_state({(1, 2): 3})
    with pytest.raises(TypeError, match=r"at <root>\['a'\]\[0\].*no pickle"):
        flatten_state({"a": [object()]})
    with pytest.raises(ValueError, match="both give the entry name 'a.b'"):
        flatten_state({"a.b": 1.0, "a": {"b": 2.0}})
    with pytest.raises(TypeError, match="needs a prefix"):
        flatten_state(3)
    with pytest.raises(TypeError, match="sparse"):
        flatten_state({"s": torch.eye(2).to_sparse()})
    assert same(unflatten_state(flatten_state(3, "x")), {"x": 3})


def test_hostile_schemas_raise_format_error():
    flat = flatten_state({"a": [1.0, "x"]}, "p")
    broken = dict(flat)
    del broken["p.a.1"]
    with pytest.raises(FormatError, match="'p.a.1' described by 'p.__schema__' is missing"):
        unflatten_state(broken)
    for text in ["{", "[]", '{"v": 2, "tree": {}}', '{"v": 1, "tree": {"leaf": "pickle"}}',
                 '{"v": 1, "tree": {"dict": [[null, {"leaf": "none"}]]}}',
                 '{"v": 1, "tree": {"pack": "int", "seq": "list"}}', '{"v": 1, "tree": 5}',
                 '{"v": 1, "tree": ' + '{"list": [' * 5000 + "]}" * 5000 + "}"]:
        with pytest.raises(FormatError):
            unflatten_state({**flat, "p.__schema__": text})
    wrong = {**flat, "p.a.0": np.zeros(3)}  # a float leaf that is not a scalar
    with pytest.raises(FormatError, match="expected a scalar"):
        unflatten_state(wrong)


@pytest.mark.mindspore
def test_mindspore_loads_the_file(tmp_path):
    ms_oracle.require_mindspore()
    st = training_state()
    flat = {}
    for key in ("optimizer", "scheduler", "rng", "loop"):
        flat.update(flatten_state(st[key], key))
    path = str(tmp_path / "state.ckpt")
    ms.save_checkpoint(flat, path)
    entries = {e["name"]: e for e in ms_oracle.load(path)}
    assert set(entries) == set(flat)
    assert entries["optimizer.__schema__"]["kind"] == "str"
    got = ms_oracle.to_numpy(entries["optimizer.state.0.exp_avg"])
    np.testing.assert_array_equal(got, st["optimizer"]["state"][0]["exp_avg"].numpy())
    assert entries["rng.python.1"]["dtype"] == "Int64"
    assert entries["loop.step"]["dtype"] == "Int64" and entries["loop.loss"]["dtype"] == "Float64"
