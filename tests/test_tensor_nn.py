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
                                  2.5, "Orthogonal", "variancescaling", "sparse"])
def test_initializer_forms(init):
    from mindckpt.common.initializer import initializer

    if init == "sparse":
        with pytest.raises(TypeError):  # Sparse needs its sparsity: no name-only form
            initializer(init, (3, 2))
        return
    t = initializer(init, (3, 2), ms.float16)
    assert t.shape == (3, 2) and t.dtype == ms.float16
    with pytest.raises(ValueError, match="was not found"):
        initializer("bogus", (2,))


# --------------------------------------------------------------------------- conversions
# (MindSpore's results for these are in tests/compat/golden; these cover the failure paths)


def test_set_dtype_casts_in_place_and_rejects_non_dtypes():
    t = ms.Tensor(np.array([1.5, 2.5], np.float32))
    assert t.set_dtype(ms.int32) is ms.int32
    assert t.dtype == ms.int32 and t.asnumpy().tolist() == [1, 2]
    with pytest.raises(RuntimeError, match="mindspore::Type"):
        t.set_dtype("float16")


def test_copy_and_from_numpy_sharing_rules():
    a = np.arange(3, dtype=np.float32)
    shared, copied = ms.Tensor.from_numpy(a), ms.Tensor(a).copy()
    a[0] = 9
    assert shared.asnumpy()[0] == 9 and copied.asnumpy()[0] == 0
    empty = ms.Tensor(np.zeros((0, 2), np.float32))
    assert empty.copy() is empty  # MindSpore: a zero-size copy is the tensor itself
    with pytest.raises(TypeError, match="Expected a NumPy array"):
        ms.Tensor.from_numpy([1.0])


def test_tensor_function_copies_its_input():
    from mindckpt.common.tensor import tensor

    a = np.ones(2, np.float32)
    t = tensor(a)
    a[0] = 3
    assert t.asnumpy().tolist() == [1.0, 1.0]
    assert tensor([1.0]).dtype == ms.float32 and tensor(np.ones(2)).dtype == ms.float64
    with pytest.raises(NotImplementedError, match="device"):
        tensor([1], device="Ascend")


def test_astype_rejects_unknown_dtypes_with_the_accepted_names():
    t = ms.Tensor(np.ones(2, np.float32))
    with pytest.raises(TypeError, match="'half'"):
        t.astype("halfish")
    with pytest.raises(TypeError, match="mindspore dtype"):
        t.astype(np.complex64)


def test_parameter_clone_with_initializer_and_copy_keep_flags():
    p = ms.Parameter(np.ones((2, 3), np.float16), name="w", requires_grad=False,
                     parallel_optimizer=False)
    z = p.clone(init="zeros")
    assert (z.name, z.dtype, z.shape, z.requires_grad, z.parallel_optimizer) == (
        "w", ms.float16, (2, 3), False, False)
    assert not z.asnumpy().any() and p.asnumpy().all()
    c = p.copy()
    assert isinstance(c, ms.Parameter) and c.asnumpy() is not p.asnumpy()


def test_dtype_helpers():
    from mindckpt.common import dtype as mstype

    assert mstype.dtype_to_nptype(ms.bfloat16) is ml_dtypes.bfloat16
    with pytest.raises(KeyError):
        mstype.dtype_to_nptype(mstype.qint4x2)  # as MindSpore: numpy has no int4
    assert mstype.pytype_to_dtype(np.uint16) is ms.uint16
    assert repr(ms.float32) == "mindspore.float32" and str(ms.float32) == "Float32"
    assert ms.float32.is_floating_point and not ms.uint8.is_signed and not ms.int8.is_complex


# --------------------------------------------------------------------------- state_dict


def test_load_state_dict_keeps_objects_and_never_writes_through_shared_arrays():
    net = nn.Dense(2, 2)
    ro = np.zeros((2, 2), np.float32)
    ro.flags.writeable = False  # e.g. a memory-mapped load
    net.weight.set_data(ms.Tensor(ro))
    weight = net.weight
    net.load_state_dict({"weight": ms.Tensor(np.full((2, 2), 7, np.int64)),
                         "bias": ms.Tensor(np.ones(2, np.float32))})
    assert net.weight is weight and weight.dtype == ms.float32
    assert weight.asnumpy().tolist() == [[7, 7], [7, 7]] and not ro.any()
    mine = np.zeros(2, np.float32)
    net.bias.set_data(ms.Tensor(mine))  # wraps the caller's array
    src = ms.Tensor(np.full(2, 5, np.float32))
    net.load_state_dict({"weight": weight, "bias": src})
    assert not mine.any() and net.bias.asnumpy().tolist() == [5, 5]
    src.asnumpy()[0] = 0
    assert net.bias.asnumpy()[0] == 5  # a copy, not the state dict's tensor


def test_load_state_dict_lists_every_problem_at_once():
    torch = pytest.importorskip("torch")
    net = nn.SequentialCell([nn.Dense(2, 2), nn.BatchNorm1d(2)])
    sd = {"0.weight": torch.ones(2, 2), "0.bias": ms.Tensor(np.ones(3, np.float32)),
          "9.x": ms.Tensor(np.ones(1, np.float32))}
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict(sd)
    text = str(info.value)
    assert text.startswith("Error(s) in loading state_dict for SequentialCell:")
    for part in ('Missing key(s) in state_dict: "1.moving_mean"', 'Unexpected key(s) in '
                 'state_dict: "9.x"', "size mismatch for 0.bias", 'parameter named "0.weight"'):
        assert part in text
    with pytest.raises(TypeError, match="dict-like"):
        net.load_state_dict([("0.weight", 1)])


def test_state_dict_keeps_shared_paths_and_skips_non_persistent_buffers():
    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.fc = nn.Dense(2, 2)
            self.tied = self.fc.weight
            self.register_buffer("steps", ms.Tensor(np.zeros(1, np.int64)))
            self.register_buffer("scratch", ms.Tensor(np.zeros(1)), persistent=False)

    net = Net()
    sd = net.state_dict()
    assert list(sd) == ["tied", "steps", "fc.weight", "fc.bias"]
    assert sd["tied"] is sd["fc.weight"] is net.fc.weight
    assert [n for n, _ in net.named_buffers()] == ["steps", "scratch"]
    assert net.state_dict(prefix="p.").keys() == {"p." + k for k in sd}
    with pytest.raises(KeyError, match="already exists"):
        net.register_buffer("fc", ms.Tensor(np.zeros(1)))
    with pytest.raises(TypeError, match="mindspore Tensor or None"):
        net.register_buffer("b", np.zeros(1))
    net.steps = ms.Tensor(np.ones(1, np.int64))
    assert net.state_dict()["steps"].asnumpy().tolist() == [1]


def test_cell_list_slices_and_iadd():
    cl = nn.CellList([nn.Dense(1, 1)])
    cl += [nn.Dense(1, 2)]
    assert [p.name for p in cl.get_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert isinstance(cl[1:], nn.CellList) and len(cl[1:]) == 1
    with pytest.raises(NotImplementedError):
        cl()


def test_variance_scaling_default_draws_the_documented_truncated_normal():
    # MindSpore 2.10 draws uniform for its default distribution='truncated_normal' (its code tests
    # for 'truncated_norm'); we draw the documented truncated normal with variance scale/fan.
    from mindckpt.common.initializer import VarianceScaling, initializer

    a = initializer(VarianceScaling(2.0), (400, 200)).asnumpy().astype(np.float64)
    std = np.sqrt(2.0 / 200)
    assert abs(a.std() / std - 1) < 0.02
    bound = 2 * std / 0.87962566103423978
    assert a.min() >= -bound - 1e-6 and a.max() <= bound + 1e-6
    assert np.mean(np.abs(a) > 0.9 * bound) < 0.05  # normal-shaped, not uniform


def test_deepcopy_of_a_cell_copies_parameters_and_keeps_names():
    import copy

    net = nn.SequentialCell([nn.Dense(2, 2), nn.BatchNorm1d(2)])
    twin = copy.deepcopy(net)
    assert [p.name for p in twin.get_parameters()] == [p.name for p in net.get_parameters()]
    twin[0].weight.asnumpy()[0, 0] = 99
    assert net[0].weight.asnumpy()[0, 0] != 99
    assert list(twin.state_dict()) == list(net.state_dict())
