"""Tensor/Parameter reprs (api-behavior §10) and Cell registration (MindSpore's rules)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import mindckpt as ms
from mindckpt import nn


@pytest.mark.parametrize(
    "tensor, text",
    [
        (ms.Tensor(np.arange(4, dtype=np.float32).reshape(2, 2)),
         "Tensor(shape=[2, 2], dtype=Float32, value=\n[[ 0.00000000e+00,  1.00000000e+00],\n [ 2.00000000e+00,  3.00000000e+00]])"),
        (ms.Tensor(np.array(1, np.int64)), "Tensor(shape=[], dtype=Int64, value= 1)"),
        (ms.Tensor(1.5), "Tensor(shape=[], dtype=Float32, value= 1.5)"),
        (ms.Tensor(np.array(True)), "Tensor(shape=[], dtype=Bool, value= True)"),
        (ms.Tensor(np.arange(3, dtype=np.int32)), "Tensor(shape=[3], dtype=Int32, value= [0, 1, 2])"),
        (ms.Tensor(np.ones(2, np.float16)), "Tensor(shape=[2], dtype=Float16, value= [ 1.0000e+00,  1.0000e+00])"),
        (ms.Tensor(np.ones(2, ml_dtypes.bfloat16)), "Tensor(shape=[2], dtype=BFloat16, value= [1, 1])"),
    ],
)
def test_tensor_repr(tensor, text):
    assert repr(tensor) == text


def test_parameter_repr_and_auto_names():
    p = ms.Parameter(ms.Tensor(np.zeros((16, 6, 5, 5), np.float32)), name="conv2.weight")
    assert str(p) == repr(p) == (
        "Parameter (name=conv2.weight, shape=(16, 6, 5, 5), dtype=Float32, requires_grad=True)")
    q = ms.Parameter(np.zeros(2, np.float32))
    assert q.name.startswith("Parameter#")
    assert ms.Parameter(np.zeros(1), name="").name.startswith("Parameter#")
    assert str(ms.float32) == "Float32" and ms.bfloat16.np_dtype == np.dtype(ml_dtypes.bfloat16)


def test_cell_registration_order_and_naming():
    class Inner(nn.Cell):
        def __init__(self):
            super().__init__()
            self.weight = ms.Parameter(np.ones(2, np.float32), name="explicit")
            self.e = ms.Parameter(np.ones(1, np.float32), name="")

    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.first = ms.Parameter(np.ones(1, np.float32))
            self.inner = Inner()
            self.named = ms.Parameter(np.ones(1, np.float32), name="top_explicit")
            self.frozen = ms.Parameter(np.ones(1, np.float32), requires_grad=False)
            self.insert_param_to_cell("added", ms.Parameter(np.ones(1, np.float32)))

    net = Net()
    names = [p.name for p in net.get_parameters()]
    assert names == ["first", "top_explicit", "frozen", "added", "inner.weight", "inner.e"]
    assert [n for n, _ in net.parameters_and_names()][:4] == ["first", "named", "frozen", "added"]
    assert [p.name for p in net.trainable_params()] == ["first", "top_explicit", "added",
                                                        "inner.weight", "inner.e"]
    assert list(net.parameters_dict()) == names
    assert net.inner.weight is net.parameters_dict()["inner.weight"]
    with pytest.raises(KeyError):
        net.insert_param_to_cell("a.b", ms.Parameter(np.ones(1)))


def test_shared_parameter_counted_once_and_removal():
    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.a = ms.Parameter(np.ones(1, np.float32))
            self.b = self.a

    net = Net()
    assert len(list(net.get_parameters())) == 1
    net.a = None
    assert [p.name for p in net.get_parameters()] == ["a"]  # still reachable as b
    del net.b
    assert list(net.get_parameters()) == []


def test_cell_without_super_init_says_so():
    class Bad(nn.Cell):
        def __init__(self):
            self.w = ms.Parameter(np.ones(1))

    with pytest.raises(AttributeError, match="super"):
        Bad()


def test_dense_and_conv_shapes_like_mindspore():
    d = nn.Dense(3, 2)
    assert (d.weight.shape, d.bias.shape) == ((2, 3), (2,))
    assert d(np.ones((1, 3), np.float32)).shape == (1, 2)
    c = nn.Conv2d(6, 16, 5, pad_mode="valid")
    assert c.weight.shape == (16, 6, 5, 5) and not c.has_bias
