"""``mindspore.set_seed`` / ``get_seed``: the global seed behind initial values.

As in MindSpore, ``set_seed(n)`` seeds ``numpy.random`` (and so every
``mindckpt.common.initializer`` draw, which takes its seed from NumPy's global state); nothing
else in mindckpt is random. It does not seed PyTorch: call ``torch.manual_seed`` for that.
"""

from __future__ import annotations

import numpy as np

__all__ = ["set_seed", "get_seed"]

_GLOBAL_SEED: int | None = None


def set_seed(seed: int) -> None:
    """Set the global seed (a non-negative int) and seed ``numpy.random`` with it."""
    global _GLOBAL_SEED
    if not isinstance(seed, int):
        raise TypeError(f"The argument 'seed' must be type of int, but got {type(seed)}.")
    if isinstance(seed, bool):
        raise TypeError("For 'global_seed', the 'seed' must be int and must >= 0, but got "
                        f"'{seed}' with type 'bool'.")
    if seed < 0:
        raise ValueError("For 'global_seed', the 'seed' must be int and must >= 0, but got "
                         f"'{seed}' with type 'int'.")
    np.random.seed(seed)
    _GLOBAL_SEED = seed


def get_seed() -> int | None:
    """The seed last given to ``set_seed``, or None."""
    return _GLOBAL_SEED
