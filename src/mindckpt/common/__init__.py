"""``mindckpt.common``: the parts of ``mindspore.common`` that model and checkpoint code import:
``dtype`` (``mstype``), ``initializer``, ``tensor``, ``parameter``, ``set_seed``/``get_seed``
and their names."""

from . import dtype, initializer
from .dtype import *  # noqa: F403  (MindSpore's common re-exports every dtype name)
from .dtype import __all__ as _dtype_all
from .parameter import Parameter, ParameterTuple
from .seed import get_seed, set_seed
from .tensor import Tensor, from_numpy, is_tensor, tensor

__all__ = ["dtype", "initializer", *_dtype_all, "Tensor", "tensor", "from_numpy", "is_tensor",
           "Parameter", "ParameterTuple",
           "set_seed", "get_seed"]
