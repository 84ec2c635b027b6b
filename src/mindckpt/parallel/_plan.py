"""The reshard planner: for one parameter and one destination rank, which source regions.

Pure box arithmetic over :class:`~mindckpt.parallel.layout.TensorLayout` (no C++ operator
planner as in MindSpore): the destination box is intersected with each *distinct* source box,
one holder of each is picked, and the overlaps must cover the destination box exactly.  Any
source and destination device counts work (4 -> 6), and de-duplicated sources (each replica set
written once, ``remove_redundancy``) are fine as long as some rank holds each box.

Parameters missing from the source strategy (MindSpore copies them verbatim from one rank,
with the wrong shape when they were sliced):

* ``<prefix>.<p>`` where ``<p>`` is in the strategy and the local shapes agree (optimizer
  moments ``moments.w``, ``adam_m.w``, ``accu_grads.w`` ...) inherit ``<p>``'s layouts;
* anything else must have the same shape in every source file: it is then replicated, and
  a shape that differs between ranks is an error naming the parameter and the ranks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import CheckpointError, TransformError  # noqa: F401 - re-exported
from .layout import Box, LayoutError, TensorLayout, box_shape, intersect
from .strategy import ParamStrategy

__all__ = ["TransformError", "ParamPlan", "resolve", "choose_sources", "probe_layouts",
           "parent_name"]


@dataclass(frozen=True)
class ParamPlan:
    """How one parameter is laid out in the sources and in the destination."""

    name: str
    src: TensorLayout
    dst: TensorLayout | None  # None: replicated on every destination rank
    how: str  # "strategy", "inherited from <p>", "replicated"

    @property
    def full_shape(self) -> tuple[int, ...]:
        return self.src.full_shape

    def dst_box(self, rank: int) -> Box | None:
        if self.dst is None:
            return tuple((0, d) for d in self.src.full_shape)
        return self.dst.box(rank)


def parent_name(name: str, strategy: Mapping[str, ParamStrategy]) -> str | None:
    """The longest ``p`` in ``strategy`` with ``name == <prefix>.<p>``."""
    i = name.find(".")
    while i != -1:
        tail = name[i + 1:]
        if tail in strategy:
            return tail
        i = name.find(".", i + 1)
    return None


def _dst_layout(name: str, full: Sequence[int], dst_map: Mapping[str, ParamStrategy] | None,
                parent: str | None) -> TensorLayout | None:
    if dst_map is None:
        return None
    ps = dst_map.get(name) or (dst_map.get(parent) if parent else None)
    if ps is None:
        return None
    try:
        return ps.layout(full)
    except LayoutError as e:
        raise TransformError(f"Parameter '{name}' (shape {list(full)}) cannot take the "
                             f"destination layout: {e}") from None


def resolve(name: str, shapes: Mapping[int, tuple[int, ...]],
            src_map: Mapping[str, ParamStrategy] | None,
            dst_map: Mapping[str, ParamStrategy] | None,
            parent_shapes: Mapping[int, tuple[int, ...]] | None = None,
            paths: Mapping[int, str] | None = None) -> ParamPlan:
    """The plan of ``name`` from its local shape in each source rank holding it.

    ``parent_shapes``: local shapes of the inheritable parent (see the module doc), if any;
    ``paths``: the source files by rank, for messages.
    """
    where = _Where(paths or {})
    if not shapes:
        raise TransformError(f"Parameter '{name}' is in no source file.")
    if src_map is not None and name in src_map:
        ps = src_map[name]
        rank, local = next((r, s) for r, s in sorted(shapes.items()))
        try:
            src = ps.layout_from_local(local)
        except LayoutError as e:
            raise TransformError(f"Parameter '{name}' in the source file of rank {rank}"
                                 f"{where(rank)} has "
                                 f"shape {list(local)}, which the source strategy cannot "
                                 f"explain: {e}") from None
        _check_shapes(name, src, shapes, where)
        return ParamPlan(name, src, _dst_layout(name, src.full_shape, dst_map, None), "strategy")
    parent = parent_name(name, src_map) if src_map is not None else None
    if parent is not None and src_map is not None and parent_shapes:
        same = all(parent_shapes.get(r) == s for r, s in shapes.items())
        if same:
            rank, local = next((r, s) for r, s in sorted(shapes.items()))
            src = src_map[parent].layout_from_local(local)
            src = TensorLayout(src.dev_matrix, src.tensor_map, src.full_shape,
                               src.opt_shard_size, src.opt_shard_step, src.stages,
                               src.param_split_shape, src.field_size, name)
            return ParamPlan(name, src, _dst_layout(name, src.full_shape, dst_map, parent),
                             f"inherited from '{parent}'")
    distinct = sorted(set(shapes.values()))
    if len(distinct) > 1:
        by = ", ".join(f"rank {r}{where(r)}: {list(s)}" for r, s in sorted(shapes.items())[:6])
        raise TransformError(
            f"Parameter '{name}' is not in the source strategy file and its shape differs "
            f"between ranks ({by}), so it is sliced in a way the transform cannot know. Save "
            "the strategy with every parameter (MindSpore: "
            "disable_strategy_file_only_for_trainable_params()) or leave it out of the "
            "source checkpoints.")
    full = distinct[0]
    ranks = sorted(shapes)
    src = TensorLayout((1,), (-1,) * len(full), full, name=name)
    plan_src = _replicated_on(src, ranks)
    return ParamPlan(name, plan_src, _dst_layout(name, full, dst_map, None), "replicated")


def _replicated_on(layout: TensorLayout, ranks: Sequence[int]) -> TensorLayout:
    # a replicated source: every listed rank holds the full tensor (stage = rank, 1 device)
    return TensorLayout((1,), layout.tensor_map, layout.full_shape, stages=tuple(ranks),
                        name=layout.name)


class _Where:
    def __init__(self, paths: Mapping[int, str]):
        self.paths = paths

    def __call__(self, rank: int) -> str:
        p = self.paths.get(rank)
        return f" ({p})" if p else ""


def _check_shapes(name: str, src: TensorLayout, shapes: Mapping[int, tuple[int, ...]],
                  where: _Where) -> None:
    for r, s in sorted(shapes.items()):
        box = src.box(r)
        if box is None:
            raise TransformError(
                f"Parameter '{name}' is in the source file of rank {r}{where(r)}, but the source "
                f"strategy puts it in stage(s) {list(src.stages)} only (rank {r} is in stage "
                f"{src.stage_of(r)}); pass the strategy file of that run (for pipelines, the "
                "one merged with merge_pipeline_strategys).")
        if box_shape(box) != tuple(s):
            raise TransformError(
                f"Parameter '{name}' has shape {list(s)} in the source file of rank {r}"
                f"{where(r)}, but "
                f"the source strategy gives that rank a slice of shape {list(box_shape(box))} "
                f"(full shape {list(src.full_shape)}); check that the strategy file belongs "
                "to these checkpoints.")


def choose_sources(src: TensorLayout, dst_box: Box, holders: set[int], dst_rank: int,
                   chosen: set[int], name: str = "") -> list[tuple[int, Box]]:
    """``(source rank, overlap)`` covering ``dst_box``: one holder per distinct source box.

    Preference: a rank already chosen for this destination rank, then the destination rank's
    own id, then the same local id, then the lowest rank (MindSpore prefers same-id replicas).
    """
    out: list[tuple[int, Box]] = []
    covered = 0
    for box, members in src.distinct_boxes():
        ov = intersect(box, dst_box)
        if ov is None:
            continue
        cands = [m for m in members if m in holders]
        if not cands:
            raise TransformError(
                f"Parameter '{name}' (destination rank {dst_rank}): the source slice "
                f"{[list(b) for b in box]} is held by rank(s) {list(members)}, but none of "
                "their checkpoint files has it. Provide "
                "the file of one of those ranks (a de-duplicated checkpoint needs every rank's "
                "file).")
        local = dst_rank % src.device_num
        pick = min(cands, key=lambda m, loc=local: (  # type: ignore[misc]
            m not in chosen, m != dst_rank, m % src.device_num != loc, m))
        chosen.add(pick)
        out.append((pick, ov))
        covered += math.prod(box_shape(ov))
    if covered != math.prod(box_shape(dst_box)):
        raise TransformError(f"Parameter '{name}': the source slices cover {covered} of the "
                             f"{math.prod(box_shape(dst_box))} elements of the destination "
                             "slice; the source strategy does not match the checkpoints.")
    return out


def probe_layouts(src: ParamStrategy | None, dst: ParamStrategy | None,
                  ) -> tuple[TensorLayout, TensorLayout | None]:
    """Layouts of a shape that both strategies divide (for planning without the files)."""
    ref = src or dst
    if ref is None:
        raise TransformError("probe_layouts needs a source or a destination strategy")
    ndim = len(ref.tensor_map)
    shape = []
    parts: list[tuple[tuple[int, ...], int] | None] = []
    for s in (src, dst):
        if s is None:
            parts.append(None)
            continue
        probe = TensorLayout(s.dev_matrix, s.tensor_map, (0,) * ndim, stages=s.stages,
                             name=s.name)
        group = len(probe.replica_groups_mp[0])
        opt = 1 if not (s.opt_shard_size and s.opt_shard_step) else (
            group if s.opt_shard_size == -1 else s.opt_shard_size)
        parts.append((probe.tensor_strategy, opt))
    for d in range(ndim):
        n = 1
        for p in parts:
            if p is not None:
                n *= p[0][d] * (p[1] if d == 0 else 1)
        shape.append(n)
    if src is not None and src.param_split_shape:
        raise TransformError(f"Parameter '{src.name}' has an uneven split (param_split_shape); "
                             "only merge_sliced_parameter handles uneven splits")
    s_lay = src.layout(shape) if src is not None else TensorLayout((1,), (-1,) * ndim,
                                                                   tuple(shape))
    d_lay = dst.layout(shape) if dst is not None else None
    return s_lay, d_lay
