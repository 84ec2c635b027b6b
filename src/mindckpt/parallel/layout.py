"""How MindSpore slices one parameter over ranks: a pure box-arithmetic model.

Vocabulary (MindSpore's, see ``shared/spec/distributed.md`` §1.1):

* ``dev_matrix``: the rank grid of one pipeline stage, row-major (the last axis varies fastest):
  with ``[2, 4]`` local rank 5 has coordinate ``(1, 1)``.
* ``tensor_map``: one entry per tensor dimension.  ``k`` splits that dimension by device axis
  ``dev_matrix[-1 - k]`` (0 is the *last* axis); ``-1`` leaves it whole; a tuple ``(k_outer, ...,
  k_inner)`` splits it by several axes, the first one outermost (MindSpore's ``Layout`` API,
  "nested" maps).  Axes that no dimension uses are replica axes.
* optimizer shard (``opt_shard_size``, ``opt_shard_step``): a further split of dim 0 of the
  model-parallel slice among the ranks holding that same slice.  Those ranks, sorted, are the
  replica group; members are taken ``opt_shard_size`` at a time (``-1``: the whole group) and
  member ``i`` of each run gets piece ``i``.  This is what MindSpore's
  ``_construct_tensor_layout_for_opt_shard`` computes: the shard axes are the innermost replica
  axes.  A step or size of 0 means no optimizer shard, as in MindSpore.
* ``param_split_shape``: explicit dim-0 sizes of uneven slices, one per slice in slice-index order
  (row-major over the tensor strategy), as MindSpore stores it.
* ``stages``: the pipeline stages that hold the parameter; global rank = stage x devices per
  stage + local rank.

From a layout: each rank's ``box`` of the full tensor (a tuple of ``(start, stop)`` per
dimension), and the ``replica_groups`` (ranks holding identical data).  Everything here is pure
and single-process; the strategy file codec and the transform tools build on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from ..errors import LayoutError  # noqa: F401 - re-exported; the tree lives in errors.py

__all__ = [
    "Box",
    "MapEntry",
    "LayoutError",
    "TensorLayout",
    "intersect",
    "box_shape",
    "relative",
    "full_box",
]

MapEntry = int | tuple[int, ...]
Box = tuple[tuple[int, int], ...]


def full_box(shape: Sequence[int]) -> Box:
    return tuple((0, int(d)) for d in shape)


def box_shape(box: Box) -> tuple[int, ...]:
    return tuple(b - a for a, b in box)


def intersect(a: Box, b: Box) -> Box | None:
    """The overlap of two boxes, or None when they do not overlap (or it is empty)."""
    out = []
    for (a0, a1), (b0, b1) in zip(a, b, strict=True):
        lo, hi = max(a0, b0), min(a1, b1)
        if lo >= hi:
            return None
        out.append((lo, hi))
    return tuple(out)


def relative(inner: Box, outer: Box) -> tuple[slice, ...]:
    """Index of ``inner`` inside an array that holds exactly ``outer``."""
    return tuple(slice(i0 - o0, i1 - o0) for (i0, i1), (o0, _o1) in zip(inner, outer, strict=True))


def _axes(entry: MapEntry) -> tuple[int, ...]:
    if isinstance(entry, tuple):
        return tuple(k for k in entry if k != -1)
    return () if entry == -1 else (entry,)


@dataclass(frozen=True)
class TensorLayout:
    """The slicing of one parameter of full shape ``full_shape`` (MindSpore vocabulary).

    ``box(rank)`` takes a *global* rank and returns None when the rank's stage does not hold
    the parameter.  Construction validates everything; a bad layout raises ``LayoutError``
    naming the problem (``name`` is only used in messages).
    """

    dev_matrix: tuple[int, ...]
    tensor_map: tuple[MapEntry, ...]
    full_shape: tuple[int, ...]
    opt_shard_size: int = 0
    opt_shard_step: int = 0
    stages: tuple[int, ...] = (0,)
    param_split_shape: tuple[int, ...] = ()
    field_size: int = 0
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "dev_matrix", tuple(int(d) for d in self.dev_matrix))
        set_(self, "tensor_map", tuple(
            tuple(int(k) for k in e) if isinstance(e, (tuple, list)) else int(e)
            for e in self.tensor_map))
        set_(self, "full_shape", tuple(int(d) for d in self.full_shape))
        set_(self, "stages", tuple(sorted({int(s) for s in self.stages})))
        set_(self, "param_split_shape", tuple(int(d) for d in self.param_split_shape))
        self._validate()

    # ------------------------------------------------------------------ validation

    def _fail(self, what: str) -> LayoutError:
        who = f"parameter '{self.name}'" if self.name else "the layout"
        return LayoutError(
            f"Invalid layout for {who} (dev_matrix={list(self.dev_matrix)}, "
            f"tensor_map={_show_map(self.tensor_map)}, shape={list(self.full_shape)}): {what}."
        )

    def _validate(self) -> None:
        if not self.dev_matrix or any(d < 1 for d in self.dev_matrix):
            raise self._fail("every device-matrix entry must be a positive integer")
        if len(self.tensor_map) != len(self.full_shape):
            raise self._fail(f"the tensor map has {len(self.tensor_map)} entries but the tensor "
                             f"has {len(self.full_shape)} dimensions; give one entry per dimension")
        if any(d < 0 for d in self.full_shape):
            raise self._fail("dimensions must be non-negative")
        seen: set[int] = set()
        n = len(self.dev_matrix)
        for e in self.tensor_map:
            if isinstance(e, tuple) and -1 in e and len(e) > 1:
                raise self._fail("a nested tensor-map entry cannot contain -1")
            for k in _axes(e):
                if not 0 <= k < n:
                    raise self._fail(f"tensor-map value {k} names no device axis (the device "
                                     f"matrix has {n} axes, so values are -1 or 0..{n - 1})")
                if k in seen:
                    raise self._fail(f"device axis {k} splits two dimensions")
                seen.add(k)
        if not self.stages or any(s < 0 for s in self.stages):
            raise self._fail("pipeline stages must be non-negative")
        if self.field_size:
            raise self._fail(f"field={self.field_size} (wide-and-deep field slicing) is not "
                             "supported by mindckpt; MindSpore's transform tools ignore it too")
        strat = self.tensor_strategy
        if self.param_split_shape:
            n_slices = math.prod(strat)
            if len(self.param_split_shape) != n_slices:
                raise self._fail(f"param_split_shape has {len(self.param_split_shape)} entries, "
                                 f"expected one per slice ({n_slices})")
            sizes = self.dim0_sizes
            if sum(sizes) != self.full_shape[0]:
                raise self._fail(f"param_split_shape pieces {list(sizes)} add up to {sum(sizes)}, "
                                 f"not dim 0 = {self.full_shape[0]}")
            start = 1
        else:
            start = 0
        for d in range(start, len(self.full_shape)):
            if self.full_shape[d] % strat[d]:
                raise self._fail(f"dimension {d} ({self.full_shape[d]}) is not divisible by its "
                                 f"{strat[d]} slices")
        if self.opt_active:
            size = self.opt_size
            group = len(self.replica_groups_mp[0])
            if size < 1 or group % size:
                raise self._fail(f"optimizer shard size {self.opt_shard_size} must divide the "
                                 f"replica group size {group} (or be -1)")
            if not self.full_shape:
                raise self._fail("a 0-d tensor cannot be optimizer-sharded")
            d0 = self.mp_dim0_sizes
            if any(s % size for s in d0):
                raise self._fail(f"dim 0 of the model-parallel slice ({d0[0]}) is not divisible "
                                 f"by the optimizer shard size {size}")
            rep = self._repeated_axes
            if len(rep) == 1 and self.opt_shard_step != math.prod(self.dev_matrix[rep[0] + 1:]):
                raise self._fail(f"opt_shard_step={self.opt_shard_step} differs from the stride "
                                 f"of the replica axis ({math.prod(self.dev_matrix[rep[0] + 1:])});"
                                 " MindSpore refuses this layout as well")

    # ------------------------------------------------------------------ derived facts

    @property
    def device_num(self) -> int:
        """Ranks in one pipeline stage."""
        return math.prod(self.dev_matrix)

    @property
    def ndim(self) -> int:
        return len(self.full_shape)

    def axis_size(self, k: int) -> int:
        return self.dev_matrix[-1 - k]

    @cached_property
    def tensor_strategy(self) -> tuple[int, ...]:
        """Slices per dimension (product of the sizes of the axes that split it)."""
        return tuple(math.prod(self.axis_size(k) for k in _axes(e)) for e in self.tensor_map)

    @property
    def is_nested(self) -> bool:
        return any(isinstance(e, tuple) for e in self.tensor_map)

    @property
    def opt_active(self) -> bool:
        return self.opt_shard_size != 0 and self.opt_shard_step != 0

    @property
    def opt_size(self) -> int:
        """Effective optimizer shard size (1 when off, the group size for -1)."""
        if not self.opt_active:
            return 1
        if self.opt_shard_size == -1:
            return len(self.replica_groups_mp[0])
        return self.opt_shard_size

    @cached_property
    def _repeated_axes(self) -> tuple[int, ...]:
        used = {len(self.dev_matrix) - 1 - k for e in self.tensor_map for k in _axes(e)}
        return tuple(i for i, v in enumerate(self.dev_matrix) if i not in used and v > 1)

    @cached_property
    def dim0_sizes(self) -> tuple[int, ...]:
        """Sizes of the dim-0 pieces of the model-parallel split (even unless uneven)."""
        strat = self.tensor_strategy
        if not strat:
            return ()
        if not self.param_split_shape:
            return (self.full_shape[0] // strat[0],) * strat[0]
        inner = math.prod(strat[1:])
        sizes = []
        for i in range(strat[0]):
            group = set(self.param_split_shape[i * inner:(i + 1) * inner])
            if len(group) != 1:
                raise self._fail(f"param_split_shape gives different dim-0 sizes {sorted(group)} "
                                 f"to slices of the same row block {i}")
            sizes.append(group.pop())
        return tuple(sizes)

    @property
    def mp_dim0_sizes(self) -> tuple[int, ...]:
        return self.dim0_sizes

    def coord(self, local_rank: int) -> tuple[int, ...]:
        """Device-matrix coordinate of a local rank (row-major)."""
        out = []
        r = local_rank
        for d in reversed(self.dev_matrix):
            out.append(r % d)
            r //= d
        return tuple(reversed(out))

    def slice_index(self, local_rank: int) -> tuple[int, ...]:
        """Per dimension, which of its slices the rank holds (model-parallel split only)."""
        c = self.coord(local_rank)
        n = len(self.dev_matrix)
        idx = []
        for e in self.tensor_map:
            i = 0
            for k in _axes(e):
                i = i * self.axis_size(k) + c[n - 1 - k]
            idx.append(i)
        return tuple(idx)

    def mp_box(self, local_rank: int) -> Box:
        """The box a local rank holds before the optimizer shard."""
        self._check_local(local_rank)
        idx = self.slice_index(local_rank)
        out = []
        for d, (n, i) in enumerate(zip(self.full_shape, idx, strict=True)):
            if d == 0 and self.param_split_shape:
                sizes = self.dim0_sizes
                start = sum(sizes[:i])
                out.append((start, start + sizes[i]))
            else:
                step = n // self.tensor_strategy[d]
                out.append((i * step, (i + 1) * step))
        return tuple(out)

    @cached_property
    def replica_groups_mp(self) -> tuple[tuple[int, ...], ...]:
        """Local ranks holding the same model-parallel slice, each group sorted, by first rank."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for r in range(self.device_num):
            groups.setdefault(self.slice_index(r), []).append(r)
        return tuple(sorted(tuple(g) for g in groups.values()))

    @cached_property
    def _group_pos(self) -> dict[int, int]:
        return {r: i for g in self.replica_groups_mp for i, r in enumerate(g)}

    def local_box(self, local_rank: int) -> Box:
        """The box a local rank holds in its file (after the optimizer shard)."""
        box = self.mp_box(local_rank)
        if not self.opt_active or not box:
            return box
        size = self.opt_size
        piece = self._group_pos[local_rank] % size
        (a, b), rest = box[0], box[1:]
        step = (b - a) // size
        return ((a + piece * step, a + (piece + 1) * step), *rest)

    def _check_local(self, local_rank: int) -> None:
        if not 0 <= local_rank < self.device_num:
            raise LayoutError(f"local rank {local_rank} is outside the stage's "
                              f"{self.device_num} devices (dev_matrix {list(self.dev_matrix)})")

    # ------------------------------------------------------------------ global ranks

    def stage_of(self, rank: int) -> int:
        return rank // self.device_num

    def global_rank(self, local_rank: int, stage: int | None = None) -> int:
        return (self.stages[0] if stage is None else stage) * self.device_num + local_rank

    def holds(self, rank: int) -> bool:
        """Whether global ``rank`` is in a stage that holds this parameter."""
        return rank >= 0 and self.stage_of(rank) in self.stages

    def box(self, rank: int) -> Box | None:
        """Global ``rank``'s box of the full tensor, or None if its stage lacks the parameter."""
        if not self.holds(rank):
            return None
        return self.local_box(rank % self.device_num)

    def ranks(self) -> list[int]:
        """Every global rank that holds the parameter."""
        return [s * self.device_num + r for s in self.stages for r in range(self.device_num)]

    def local_shape(self, rank: int = 0) -> tuple[int, ...]:
        b = self.local_box(rank % self.device_num)
        return box_shape(b)

    def replica_groups(self) -> list[tuple[int, ...]]:
        """Global ranks holding identical data (after the optimizer shard), sorted."""
        groups: dict[Box, list[int]] = {}
        for r in self.ranks():
            groups.setdefault(self.local_box(r % self.device_num), []).append(r)
        return sorted(tuple(g) for g in groups.values())

    def distinct_boxes(self) -> list[tuple[Box, tuple[int, ...]]]:
        """``(box, ranks holding it)`` for each distinct box, in order of first rank."""
        groups: dict[Box, list[int]] = {}
        for r in self.ranks():
            groups.setdefault(self.local_box(r % self.device_num), []).append(r)
        return sorted(((b, tuple(g)) for b, g in groups.items()), key=lambda x: x[1][0])

    # ------------------------------------------------------------------ constructors

    @classmethod
    def replicated(cls, full_shape: Sequence[int], device_num: int = 1,
                   stages: Sequence[int] = (0,)) -> TensorLayout:
        """Every rank holds the whole tensor."""
        return cls((device_num,), (-1,) * len(full_shape), tuple(full_shape), stages=tuple(stages))

    @classmethod
    def from_local_shape(cls, dev_matrix: Sequence[int], tensor_map: Sequence[MapEntry],
                         local_shape: Sequence[int], *, opt_shard_size: int = 0,
                         opt_shard_step: int = 0, stages: Sequence[int] = (0,),
                         param_split_shape: Sequence[int] = (), name: str = "") -> TensorLayout:
        """The layout whose rank-0 slice has ``local_shape`` (full shape worked out)."""
        probe = cls(tuple(dev_matrix), tuple(tensor_map), (0,) * len(tensor_map),
                    stages=tuple(stages), name=name)
        strat = probe.tensor_strategy
        full = [int(n) * s for n, s in zip(local_shape, strat, strict=True)]
        if param_split_shape:
            if full:
                full[0] = sum(probe._uneven_rows(param_split_shape, strat))
        if full and opt_shard_size != 0 and opt_shard_step != 0:
            group = len(probe.replica_groups_mp[0])
            size = group if opt_shard_size == -1 else opt_shard_size
            if param_split_shape:
                raise LayoutError(f"parameter '{name}': an optimizer shard on an uneven split "
                                  "is not supported")
            full[0] *= size
        return cls(tuple(dev_matrix), tuple(tensor_map), tuple(full),
                   opt_shard_size=opt_shard_size, opt_shard_step=opt_shard_step,
                   stages=tuple(stages), param_split_shape=tuple(param_split_shape), name=name)

    @staticmethod
    def _uneven_rows(split: Sequence[int], strat: Sequence[int]) -> list[int]:
        inner = math.prod(strat[1:])
        return [int(split[i * inner]) for i in range(strat[0])] if strat else []

    def with_shape(self, full_shape: Sequence[int]) -> TensorLayout:
        return TensorLayout(self.dev_matrix, self.tensor_map, tuple(full_shape),
                            self.opt_shard_size, self.opt_shard_step, self.stages,
                            self.param_split_shape, self.field_size, self.name)

    def optimizer_step_for(self) -> int:
        """The ``opt_weight_shard_step`` MindSpore records: the stride of the innermost
        replica axis used by the shard (0 when there is no replica axis)."""
        rep = self._repeated_axes
        return math.prod(self.dev_matrix[rep[-1] + 1:]) if rep else 0


def _show_map(tm: Sequence[MapEntry]) -> str:
    return "[" + ", ".join(str(list(e)) if isinstance(e, tuple) else str(e) for e in tm) + "]"
