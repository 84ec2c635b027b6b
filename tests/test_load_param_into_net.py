"""load_param_into_net: MindSpore's matching, conversions, messages; atomic on error."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import mindckpt as ms
from mindckpt import nn


class WB(nn.Cell):
    def __init__(self, w=np.zeros(3, np.float32), b=np.zeros(2, np.float32)):
        super().__init__()
        self.w = ms.Parameter(ms.Tensor(w), name="w")
        self.b = ms.Parameter(ms.Tensor(b), name="b")


def P(a):
    return ms.Parameter(ms.Tensor(np.asarray(a)))


def test_return_values_exact_pass():
    assert ms.load_param_into_net(WB(), {}) == (["w", "b"], [])
    assert ms.load_param_into_net(WB(), {"w": P(np.ones(3, np.float32))}) == (["b"], [])
    net = WB()
    d = {"w": P(np.ones(3, np.float32)), "b": P(np.ones(2, np.float32)), "extra": P(np.ones(1))}
    assert ms.load_param_into_net(net, d) == ([], ["extra"])
    assert net.w.asnumpy().tolist() == [1, 1, 1]


def test_parameter_object_identity_and_requires_grad_are_kept():
    net = WB()
    net.w.requires_grad = False
    w = net.w
    ms.load_param_into_net(net, {"w": P(np.ones(3, np.float32))})
    assert net.w is w and w.requires_grad is False and w.name == "w"


# MindSpore 2.10 loads these by removing the prefix but still lists the names in
# ckpt_not_load; mindckpt reports only what was not loaded (docs/deviations.md).
@pytest.mark.parametrize(
    "keys, result",
    [
        (["net.w", "net.b"], ([], [])),
        (["a.w", "b.b"], ([], [])),
        (["xw", "xb"], ([], [])),
    ],
)
def test_suffix_pass(keys, result):
    shapes = {"w": 3, "b": 2}
    d = {k: P(np.full(shapes[k[-1]], 5, np.float32)) for k in keys}
    net = WB()
    assert ms.load_param_into_net(net, d) == result
    assert net.w.asnumpy().tolist() == [5, 5, 5] and net.b.asnumpy().tolist() == [5, 5]


def test_strict_load_has_no_suffix_pass():
    d = {"net.w": P(np.ones(3, np.float32)), "net.b": P(np.ones(2, np.float32))}
    net = WB()
    assert ms.load_param_into_net(net, d, strict_load=True) == (["w", "b"], ["net.w", "net.b"])
    assert net.w.asnumpy().tolist() == [0, 0, 0]


def test_str_values_are_skipped_silently():
    assert ms.load_param_into_net(WB(), {"w": "text"}) == (["b"], ["w"])


@pytest.mark.parametrize(
    "ckpt_dtype, net_dtype, strict, ok",
    [
        (np.float16, np.float32, False, True),
        (ml_dtypes.bfloat16, np.float32, False, True),
        (np.float64, np.float16, False, True),
        (np.int32, np.int64, False, True),
        (np.int32, np.int64, True, False),
        (np.int32, np.float32, False, False),
        (np.bool_, np.int32, False, False),
        (np.uint8, np.uint16, False, False),
    ],
)
def test_dtype_conversion_families(ckpt_dtype, net_dtype, strict, ok):
    net = WB(w=np.zeros(3, net_dtype))
    d = {"w": P(np.arange(3).astype(ckpt_dtype)), "b": P(np.zeros(2, np.float32))}
    if ok:
        ms.load_param_into_net(net, d, strict_load=strict)
        assert net.w.asnumpy().dtype == np.dtype(net_dtype)
        assert net.w.asnumpy().astype(np.float64).tolist() == [0, 1, 2]
    else:
        with pytest.raises(RuntimeError, match="should have the same type as w"):
            ms.load_param_into_net(net, d, strict_load=strict)


def test_shape_mismatch_message_and_nothing_changes():
    net = WB()
    d = {"w": P(np.ones(3, np.float32)), "b": P(np.ones(5, np.float32))}
    with pytest.raises(RuntimeError) as ei:
        ms.load_param_into_net(net, d)
    assert str(ei.value).startswith(
        "For 'load_param_into_net', b in the argument 'net' should have the same shape as b in "
        "the argument 'parameter_dict'. But got its shape (2,) in the argument 'net' and shape "
        "(5,) in the argument 'parameter_dict'.May you need to check")
    assert net.w.asnumpy().tolist() == [0, 0, 0]  # MindSpore would have changed w already


def test_trailing_one_dims_are_squeezed_to_the_net_shape():
    net = WB(w=np.zeros((2, 3), np.float32))
    ms.load_param_into_net(net, {"w": P(np.ones((2, 3, 1, 1), np.float32))})
    assert net.w.shape == (2, 3)


@pytest.mark.parametrize(
    "args, exc, msg",
    [
        ((1, {}), TypeError, "For 'load_param_into_net', the argument 'net' should be a Cell, but got <class 'int'>."),
        ((WB(), []), TypeError, "the argument 'parameter_dict' should be a dict, but got <class 'list'>."),
        ((WB(), {1: P(np.ones(1))}), TypeError, "For 'parameter_dict', the element in the argument 'parameter_dict' should be a 'str' and 'Parameter'"),
        ((WB(), {}, 1), TypeError, "The input value must be a bool, but got int."),
        ((WB(), {}, False, True), TypeError, "can only be used in parallel scenarios"),
    ],
)
def test_validation(args, exc, msg):
    with pytest.raises(exc) as ei:
        ms.load_param_into_net(*args)
    assert msg in str(ei.value)


def test_into_torch_module_keeps_tensors_and_converts_dtypes():
    torch = pytest.importorskip("torch")
    m = torch.nn.Linear(3, 2).to(torch.bfloat16)
    weight = m.weight
    d = {"weight": P(np.ones((2, 3), np.float32)), "bias": P(np.full(2, 2, np.float16))}
    assert ms.load_param_into_net(m, d) == ([], [])
    assert m.weight is weight and m.weight.dtype == torch.bfloat16
    assert m.weight.float().tolist() == [[1, 1, 1], [1, 1, 1]]
    assert m.bias.float().tolist() == [2, 2]


# ------------------------------------------------------------------ honest loads (issue 12.6)
def test_meta_device_module_refused_not_reported_loaded(tmp_path):
    torch = pytest.importorskip("torch")
    src = torch.nn.Linear(3, 2)
    ms.save_checkpoint(src, str(tmp_path / "m.ckpt"))
    with torch.device("meta"):
        dst = torch.nn.Linear(3, 2)
    with pytest.raises(RuntimeError, match="meta"):
        ms.load_param_into_net(dst, ms.load_checkpoint(str(tmp_path / "m.ckpt")))
    dst = dst.to_empty(device="cpu")
    assert ms.load_param_into_net(dst, ms.load_checkpoint(str(tmp_path / "m.ckpt"))) == ([], [])
    assert torch.equal(dst.weight, src.weight)


def test_ddp_prefix_both_ways(tmp_path):
    torch = pytest.importorskip("torch")

    class DataParallel(torch.nn.Module):  # same name and shape as torch's wrapper
        def __init__(self, module):
            super().__init__()
            self.module = module

    plain = torch.nn.Linear(3, 2)
    wrapped = DataParallel(torch.nn.Linear(3, 2))
    # saved wrapped, loaded plain: the prefix is removed and nothing is reported missing
    ms.save_checkpoint(wrapped, str(tmp_path / "w.ckpt"))
    assert ms.load_param_into_net(plain, ms.load_checkpoint(str(tmp_path / "w.ckpt"))) == ([], [])
    assert torch.equal(plain.weight, wrapped.module.weight)
    # saved plain, loaded into the wrapper: looked through
    other = torch.nn.Linear(3, 2)
    ms.save_checkpoint(other, str(tmp_path / "p.ckpt"))
    assert ms.load_param_into_net(wrapped, ms.load_checkpoint(str(tmp_path / "p.ckpt"))) == ([], [])
    assert torch.equal(wrapped.module.weight, other.weight)


def test_name_map_mindspore_batchnorm_to_torch(tmp_path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    vals = {k: rng.standard_normal(4).astype(np.float32)
            for k in ("bn.gamma", "bn.beta", "bn.moving_mean", "bn.moving_variance")}
    ms.save_checkpoint({k: ms.Parameter(ms.Tensor(v), name=k) for k, v in vals.items()},
                       str(tmp_path / "bn.ckpt"))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = torch.nn.BatchNorm1d(4)

    net = Net()
    params = ms.load_checkpoint(str(tmp_path / "bn.ckpt"))
    not_loaded, _ = ms.load_param_into_net(net, params)
    assert "bn.weight" in not_loaded  # without a map the names do not match
    assert ms.load_param_into_net(net, params, name_map="mindspore_to_torch") == (
        ["bn.num_batches_tracked"], [])
    np.testing.assert_array_equal(net.bn.weight.detach().numpy(), vals["bn.gamma"])
    np.testing.assert_array_equal(net.bn.running_var.numpy(), vals["bn.moving_variance"])
    # a dict and a callable work too
    net2 = Net()
    m = {"bn.gamma": "bn.weight"}
    assert "bn.weight" not in ms.load_param_into_net(net2, params, name_map=m)[0]
    assert "bn.bias" not in ms.load_param_into_net(
        net2, params, name_map=lambda k: k.replace("beta", "bias"))[0]
    with pytest.raises(TypeError, match="name_map"):
        ms.load_param_into_net(net2, params, name_map=3)
