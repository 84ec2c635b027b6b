"""``mindckpt.common``: the parts of ``mindspore.common`` that model definitions import."""

from . import initializer

__all__ = ["initializer"]
