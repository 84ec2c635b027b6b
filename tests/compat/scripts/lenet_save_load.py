"""MindSpore docs: LeNet5 (docs/mindspore/code/lenet.py) saved and loaded, with the examples of
save_checkpoint's documentation (append_dict, choice_func, crc_check, safetensors)."""
import os

import numpy as np
import mindspore
import mindspore.nn as nn
from mindspore import context
from mindspore.common.initializer import Normal

context.set_context(mode=context.GRAPH_MODE, device_target="CPU")


class LeNet5(nn.Cell):
    def __init__(self, num_class=10, num_channel=1, include_top=True):
        super(LeNet5, self).__init__()  # noqa: UP008 (the docs' text)
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


net = LeNet5()
for p in net.trainable_params():
    print(p.name, p.shape, p.dtype)
mindspore.save_checkpoint(net, "./lenet.ckpt")
mindspore.save_checkpoint(net, "./lenet_crc.ckpt", crc_check=True, append_dict={"epoch_num": 3, "lr": 0.01})
mindspore.save_checkpoint(net, "./lenet_conv.ckpt",
                          choice_func=lambda x: x.startswith("conv") and not x.startswith("conv1"))
mindspore.save_checkpoint(net, "./lenet", format="safetensors")
print(sorted(f for f in os.listdir(".") if f.startswith("lenet")))

param_dict = mindspore.load_checkpoint("./lenet.ckpt")
print(param_dict["conv2.weight"])
new_net = LeNet5()
param_not_load, ckpt_not_load = mindspore.load_param_into_net(new_net, param_dict)
print(param_not_load, ckpt_not_load)
print(all(np.array_equal(a.asnumpy(), b.asnumpy())
          for a, b in zip(net.get_parameters(), new_net.get_parameters(), strict=True)))

crc = mindspore.load_checkpoint("./lenet_crc.ckpt", crc_check=True)
print(list(crc)[-2:], crc["epoch_num"], crc["lr"])
print(list(mindspore.load_checkpoint("./lenet_conv.ckpt")))
print(list(mindspore.load_checkpoint("./lenet.ckpt", specify_prefix="fc", filter_prefix="fc3")))
st = mindspore.load_checkpoint("./lenet.safetensors", format="safetensors")
print(len(st), st["fc3.bias"].shape, st["fc3.bias"].dtype)
