"""``mindckpt.nn``: MindSpore's ``Cell`` parameter container and parameter-holding layers.

``Cell`` (naming rules, ``parameters_and_names``, ``state_dict``/``load_state_dict``) is in
:mod:`mindckpt.nn.cell`; the layers (``Dense``, ``Conv1d``, ``Conv2d``, ``BatchNorm1d``,
``BatchNorm2d``, ``LayerNorm``, ``Embedding`` ...) in :mod:`mindckpt.nn.layers`; the
containers (``SequentialCell``, ``CellList``) in :mod:`mindckpt.nn.container`; activations and
``Dropout`` in :mod:`mindckpt.nn.activation`.
"""

from . import activation as _activation
from .activation import *  # noqa: F403  (MindSpore's activation and dropout cells)
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
)

__all__ = [
    "Cell", "SequentialCell", "CellList", "Dense", "Conv1d", "Conv2d", "BatchNorm1d",
    "BatchNorm2d", "LayerNorm", "Embedding", "Flatten", "MaxPool2d", *_activation.__all__,
]  # fmt: skip
