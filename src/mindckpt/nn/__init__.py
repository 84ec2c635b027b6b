"""``mindckpt.nn``: MindSpore's ``Cell`` parameter container and parameter-holding layers.

``Cell`` (naming rules, ``parameters_and_names``, ``state_dict``/``load_state_dict``) is in
:mod:`mindckpt.nn.cell`; the layers (``Dense``, ``Conv1d``, ``Conv2d``, ``BatchNorm1d``,
``BatchNorm2d``, ``LayerNorm``, ``Embedding`` ...) in :mod:`mindckpt.nn.layers`; the
containers (``SequentialCell``, ``CellList``) in :mod:`mindckpt.nn.container`.
"""

from .cell import Cell
from .container import CellList, SequentialCell
from .layers import (
    BatchNorm1d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    Dense,
    Embedding,
    Flatten,
    LayerNorm,
    MaxPool2d,
    ReLU,
)

__all__ = [
    "Cell", "SequentialCell", "CellList", "Dense", "Conv1d", "Conv2d", "BatchNorm1d",
    "BatchNorm2d", "LayerNorm", "Embedding", "ReLU", "Flatten", "MaxPool2d",
]  # fmt: skip
