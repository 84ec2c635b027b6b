"""Cell.state_dict / load_state_dict (MindSpore 2.10's docstring example, with Tensor) on a model
with BatchNorm2d, LayerNorm, Embedding, Conv1d, SequentialCell and CellList, saved with
save_checkpoint and loaded back."""
import numpy as np
import mindspore
from mindspore import nn


class Model(mindspore.nn.Cell):
    def __init__(self):
        super().__init__()
        self.register_buffer("buffer_a", mindspore.Tensor([4, 5, 6]))
        self.param_a = mindspore.Parameter(mindspore.Tensor([1, 2, 3]))

    def construct(self, x):
        return x + self.buffer_a + self.param_a


model = Model()
print(model.state_dict())
mindspore.save_checkpoint(model.state_dict(), './model_state_dict_ckpt')
new_model = Model()
print(new_model.load_state_dict(mindspore.load_checkpoint('./model_state_dict_ckpt')))
print(new_model.state_dict())


class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 8, padding_idx=0)
        self.conv = nn.Conv1d(8, 8, 3, has_bias=True)
        self.bn = nn.BatchNorm2d(8)
        self.norm = nn.LayerNorm((8,))
        self.blocks = nn.CellList([nn.Dense(8, 8), nn.Dense(8, 4)])
        self.head = nn.SequentialCell([nn.Dense(4, 4), nn.ReLU(), nn.Dense(4, 2, has_bias=False)])


net = Net()
for name, p in net.parameters_and_names():
    print(name, p.name, p.shape, p.dtype, p.requires_grad)
print(list(net.state_dict()) == [p.name for p in net.get_parameters()])
mindspore.save_checkpoint(net, "./net.ckpt")
loaded = mindspore.load_checkpoint("./net.ckpt")
fresh = Net()
result = fresh.load_state_dict(loaded)
print(result, result.missing_keys, result.unexpected_keys)
print(all(np.array_equal(a.asnumpy(), b.asnumpy())
          for a, b in zip(net.get_parameters(), fresh.get_parameters(), strict=True)))
print(fresh.load_state_dict({"bn.gamma": loaded["bn.gamma"], "extra": loaded["bn.beta"]}, strict=False))
try:
    fresh.load_state_dict({"bn.gamma": loaded["bn.beta"]})
except RuntimeError as e:
    print(str(e).splitlines()[0])
print(mindspore.load_param_into_net(Net(), loaded))
