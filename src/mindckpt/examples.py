"""Networks used by the examples in MindSpore's documentation."""

from __future__ import annotations

from . import nn
from .common.initializer import Normal

__all__ = ["LeNet5"]


class LeNet5(nn.Cell):
    """MindSpore's documentation LeNet5 (``docs/mindspore/code/lenet.py``): the same layers,
    parameter names, shapes, order and initializers."""

    def __init__(self, num_class: int = 10, num_channel: int = 1, include_top: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(num_channel, 6, 5, pad_mode="valid")
        self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid")
        self.relu = nn.ReLU()
        self.max_pool2d = nn.MaxPool2d(kernel_size=2, stride=2)
        self.include_top = include_top
        if self.include_top:
            self.flatten = nn.Flatten()
            self.fc1 = nn.Dense(16 * 5 * 5, 120, weight_init=Normal(0.02))
            self.fc2 = nn.Dense(120, 84, weight_init=Normal(0.02))
            self.fc3 = nn.Dense(84, num_class)
