"""Sliced (distributed) checkpoints: layouts, MindSpore strategy files and the offline tools.

``layout`` holds the pure box model; ``strategy`` reads and writes MindSpore's strategy files;
``transform`` has MindSpore's merge and reshard tools.
"""

from .layout import LayoutError, TensorLayout

__all__ = ["TensorLayout", "LayoutError"]
