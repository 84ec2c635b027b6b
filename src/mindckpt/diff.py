"""Compare two checkpoints entry by entry, streamed: :func:`diff_checkpoints`.

::

    d = diff_checkpoints("a.ckpt", "b.safetensors")
    d.same, d.only_a, d.only_b, d.changed          # names and dtype/shape changes
    for v in d.values: v.name, v.max_abs, v.max_rel, v.n_diff

Names only in one file, dtype or shape differences, and, for tensors with the same dtype and
shape, value differences: the count of differing elements, the largest absolute difference and
the largest relative difference ``|a - b| / max(|a|, |b|)``.  NaN equals NaN.  Tensors are read in
pieces of at most about 16 MiB (runs of whole trailing dimensions), so memory stays bounded
whatever the files' and the tensors' sizes.  A ``.ckpt`` and a safetensors file compare by content.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .handle import CheckpointHandle, open_checkpoint
from .verify import Progress, entry_type

__all__ = ["DiffResult", "ValueDiff", "diff_checkpoints"]

_PIECE = 16 << 20


@dataclass
class ValueDiff:
    """Value differences of one entry present in both files with the same dtype and shape.

    ``n_diff`` counts the elements that differ beyond the tolerance (out of ``numel``);
    ``max_abs`` and ``max_rel`` are over all elements (0.0 when equal; ``inf`` when one side is
    infinite or NaN and the other is not).  For ``str`` and ``map`` entries ``numel`` is 1.
    """

    name: str
    numel: int
    n_diff: int
    max_abs: float
    max_rel: float


@dataclass
class DiffResult:
    """What :func:`diff_checkpoints` found.

    Attributes:
        a, b: the two files.
        only_a, only_b: names present in one file only, in file order.
        changed: ``{name: (what a has, what b has)}`` for entries whose kind, dtype or shape
            differ (``"Float32 (2, 3)"`` ...).
        values: one :class:`ValueDiff` per entry compared by value (equal ones included).
        compared: entries compared by value.
    """

    a: str
    b: str
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    values: list[ValueDiff] = field(default_factory=list)

    @property
    def differing(self) -> list[ValueDiff]:
        """The value comparisons that found differences."""
        return [v for v in self.values if v.n_diff]

    @property
    def same(self) -> bool:
        """True when the two files hold the same names, dtypes, shapes and values."""
        return not (self.only_a or self.only_b or self.changed or self.differing)


def _describe(e: Any) -> str:
    if e.kind == "tensor":
        return f"{entry_type(e)} {tuple(e.shape)}"
    return e.kind


def _pieces(shape: tuple[int, ...], itemsize: int) -> Iterator[tuple[tuple[int, int], ...]]:
    """Boxes that tile ``shape`` in C order, each about ``_PIECE`` bytes or less (one element's
    worth at the least): whole trailing dimensions, a run of the first partial one."""
    nd = len(shape)
    if nd == 0:
        yield ()
        return
    d = 0
    while d < nd - 1 and math.prod(shape[d + 1:]) * itemsize > _PIECE:
        d += 1
    inner = math.prod(shape[d + 1:]) * itemsize
    step = max(1, _PIECE // max(1, inner))
    for lead in itertools.product(*(range(n) for n in shape[:d])):
        for start in range(0, shape[d], step):
            stop = min(shape[d], start + step)
            yield tuple((i, i + 1) for i in lead) + ((start, stop),) + tuple(
                (0, n) for n in shape[d + 1:])


def _compare(x: np.ndarray, y: np.ndarray, atol: float, rtol: float) -> tuple[int, float, float]:
    if x.dtype == np.bool_:
        x, y = x.astype(np.int8), y.astype(np.int8)
    if x.dtype.kind in "iu":
        exact = x != y
        if not exact.any():
            return 0, 0.0, 0.0
        xf, yf = x.astype(np.float64), y.astype(np.float64)
    else:
        xf, yf = x.astype(np.float64), y.astype(np.float64)
        nan_x, nan_y = np.isnan(xf), np.isnan(yf)
        exact = ~((xf == yf) | (nan_x & nan_y))
        if not exact.any():
            return 0, 0.0, 0.0
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        delta = np.abs(xf - yf)
        delta = np.where(exact, delta, 0.0)
        delta = np.where(np.isnan(delta), np.inf, delta)  # NaN vs number, inf vs inf of other sign
        scale = np.maximum(np.abs(xf), np.abs(yf))
        rel = np.where(exact, np.where(scale > 0, delta / scale, np.inf), 0.0)
        rel = np.where(np.isnan(rel), np.inf, rel)
        beyond = exact & ~(delta <= atol + rtol * np.abs(yf))
    return int(beyond.sum()), float(delta.max()), float(rel.max())


def _diff_tensor(fa: CheckpointHandle, fb: CheckpointHandle, e: Any, atol: float, rtol: float,
                 tick: Any) -> ValueDiff:
    shape = tuple(e.shape)
    n_diff, max_abs, max_rel = 0, 0.0, 0.0
    if not shape or math.prod(shape) == 0:
        x = np.asarray(fa.get_tensor(e.name))
        y = np.asarray(fb.get_tensor(e.name))
        if x.size:
            n_diff, max_abs, max_rel = _compare(x.reshape(-1), y.reshape(-1), atol, rtol)
        tick(e.nbytes)
        return ValueDiff(e.name, math.prod(shape), n_diff, max_abs, max_rel)
    sa, sb = fa.get_slice(e.name), fb.get_slice(e.name)
    for box in _pieces(shape, e.nbytes // max(1, math.prod(shape))):
        index = tuple(slice(a, b) for a, b in box)
        x, y = sa[index], sb[index]
        n, a, r = _compare(x.reshape(-1), y.reshape(-1), atol, rtol)
        n_diff += n
        max_abs, max_rel = max(max_abs, a), max(max_rel, r)
        tick(x.nbytes)
    return ValueDiff(e.name, math.prod(shape), n_diff, max_abs, max_rel)


def _equal_objects(x: Any, y: Any) -> bool:
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return bool(np.array_equal(np.asarray(x), np.asarray(y), equal_nan=False))
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_equal_objects(p, q) for p, q in zip(x, y, strict=True))
    return bool(x == y)


def diff_checkpoints(
    a: Any,
    b: Any,
    *,
    dec_key_a: bytes | None = None,
    dec_mode_a: str | None = None,
    dec_key_b: bytes | None = None,
    dec_mode_b: str | None = None,
    atol: float = 0.0,
    rtol: float = 0.0,
    values: bool = True,
    storage_options: dict[str, Any] | None = None,
    progress: Progress = None,
) -> DiffResult:
    """Compare checkpoints ``a`` and ``b`` (paths or URLs; ``.ckpt`` or safetensors).

    Args:
        a, b: the two files.
        dec_key_a, dec_mode_a, dec_key_b, dec_mode_b: keys and modes of encrypted files
            (a mode of ``None`` takes the one the file names).
        atol, rtol: an element differs when ``|a - b| > atol + rtol * |b|`` (default: any
            difference).  ``max_abs``/``max_rel`` are reported regardless.
        values: compare values (``False``: names, dtypes and shapes only; reads headers only).
        storage_options: passed to fsspec for URLs.
        progress: ``progress(done, total)`` in bytes of ``a`` compared.

    Raises:
        CheckpointNotFoundError, FormatError, DecryptionError: as
        :func:`~mindckpt.open_checkpoint` for either file.
    """
    if atol < 0 or rtol < 0 or not (math.isfinite(atol) and math.isfinite(rtol)):
        raise ValueError(f"diff_checkpoints: atol and rtol must be finite and >= 0, got "
                         f"atol={atol}, rtol={rtol}")
    with open_checkpoint(a, dec_key=dec_key_a, dec_mode=dec_mode_a,
                         storage_options=storage_options) as fa, \
            open_checkpoint(b, dec_key=dec_key_b, dec_mode=dec_mode_b,
                            storage_options=storage_options) as fb:
        result = DiffResult(fa.path, fb.path)
        ia, ib = fa.index, fb.index
        result.only_a = [n for n in ia.keys() if n not in ib]
        result.only_b = [n for n in ib.keys() if n not in ia]
        common = []
        for name in ia.keys():
            if name not in ib:
                continue
            ea, eb = ia[name], ib[name]
            da, db = _describe(ea), _describe(eb)
            if da != db:
                result.changed[name] = (da, db)
            else:
                common.append(ea)
        if not values:
            return result
        total = sum(e.nbytes for e in common)
        done = [0]

        def tick(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(min(done[0], total), total)

        for e in common:
            if e.kind == "tensor":
                result.values.append(_diff_tensor(fa, fb, e, atol, rtol, tick))
            else:
                same = _equal_objects(fa.get_tensor(e.name), fb.get_tensor(e.name))
                result.values.append(ValueDiff(e.name, 1, 0 if same else 1,
                                               0.0 if same else math.inf,
                                               0.0 if same else math.inf))
                tick(e.nbytes)
        if progress is not None:
            progress(total, total)
        return result
