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


LENET_PY = '''
import mindspore.nn as nn
from mindspore.common.initializer import Normal


class LeNet5(nn.Cell):
    def __init__(self, num_class=10, num_channel=1, include_top=True):
        super(LeNet5, self).__init__()
        self.conv1 = nn.Conv2d(num_channel, 6, 5, pad_mode='valid')
        self.conv2 = nn.Conv2d(6, 16, 5, pad_mode='valid')
        self.relu = nn.ReLU()
        self.max_pool2d = nn.MaxPool2d(kernel_size=2, stride=2)
        self.include_top = include_top
        if self.include_top:
            self.flatten = nn.Flatten()
            self.fc1 = nn.Dense(16 * 5 * 5, 120, weight_init=Normal(0.02))
            self.fc2 = nn.Dense(120, 84, weight_init=Normal(0.02))
            self.fc3 = nn.Dense(84, num_class)

    def construct(self, x):
        x = self.conv1(x)
        x = self.relu(x)
        x = self.max_pool2d(x)
        x = self.conv2(x)
        x = self.relu(x)
        x = self.max_pool2d(x)
        if not self.include_top:
            return x
        x = self.flatten(x)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        x = self.fc3(x)
        return x
'''


def test_mindspore_docs_lenet_py_runs_with_mindckpt(tmp_cwd):
    """MindSpore's docs/mindspore/code/lenet.py, with only the package name changed."""
    ns: dict = {}
    exec(compile(LENET_PY.replace("mindspore", "mindckpt"), "lenet.py", "exec"), ns)
    net = ns["LeNet5"]()
    assert [(p.name, p.shape) for p in net.trainable_params()] == [
        ("conv1.weight", (6, 1, 5, 5)), ("conv2.weight", (16, 6, 5, 5)),
        ("fc1.weight", (120, 400)), ("fc1.bias", (120,)), ("fc2.weight", (84, 120)),
        ("fc2.bias", (84,)), ("fc3.weight", (10, 84)), ("fc3.bias", (10,))]
    assert abs(float(net.fc1.weight.asnumpy().std()) - 0.02) < 0.002  # Normal(0.02)
    ms.save_checkpoint(net, "./lenet.ckpt",
                       choice_func=lambda x: x.startswith("conv") and not x.startswith("conv1"))
    assert list(ms.load_checkpoint("./lenet.ckpt")) == ["conv2.weight"]


@pytest.mark.parametrize("init", ["zeros", "ones", "normal", "he_uniform", "xavier_uniform",
                                  2.5, np.ones((3, 2))])
def test_initializer_forms(init):
    from mindckpt.common.initializer import initializer

    t = initializer(init, (3, 2), ms.float16)
    assert t.shape == (3, 2) and t.dtype == ms.float16
    with pytest.raises(ValueError, match="not supported"):
        initializer("bogus", (2,))
