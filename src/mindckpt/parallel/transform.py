"""MindSpore's offline reshard tools: ``rank_list_for_transform``, ``transform_checkpoint_by_rank``,
``transform_checkpoints`` (and their ``convert_*`` aliases), ``transform_safetensors_by_rank``
and ``transform_safetensors_by_stage``.

Same names, arguments, directory layout (``src/rank_<r>/<file>`` in,
``dst/rank_<r>/<prefix><r>.<fmt>`` out) and results as MindSpore 2.10, computed by box
arithmetic (:mod:`._plan`) instead of MindSpore's operator replay, with these differences:

* any source and destination device counts (MindSpore requires that one divides the other);
* de-duplicated (``remove_redundancy``) sources are accepted;
* a parameter missing from the source strategy is never copied with a wrong shape (see
  :mod:`._plan`);
* memory stays bounded: one parameter at a time, only the overlapping regions read, each
  destination file streamed to disk;
* safetensors -> safetensors gives the same (right) values as ``.ckpt`` output;
* a ``-`` in a parameter name is just a character;
* in a rank directory the file with the largest trailing numbers is taken (``net-1_10`` over
  ``net-1_9``), not the lexicographically last;
* ``progress=`` (keyword-only) is called after each parameter written.
"""

from __future__ import annotations

import glob
import hashlib
import math
import os
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..pipeline import format_from_name
from ._io import SourceFile, write_streaming
from ._plan import ParamPlan, TransformError, choose_sources, parent_name, probe_layouts, resolve
from .layout import box_shape, relative
from .strategy import ParamStrategy, load_layout_map, read_strategy

__all__ = [
    "TransformProgress",
    "TransformError",
    "rank_list_for_transform",
    "rank_list_for_convert",
    "transform_checkpoint_by_rank",
    "transform_checkpoints",
    "convert_checkpoint_by_rank",
    "convert_checkpoints",
    "transform_safetensors_by_rank",
    "transform_safetensors_by_stage",
    "collect_rank_files",
    "Resharder",
]


class TransformProgress(NamedTuple):
    """What ``progress`` receives after each parameter of each destination rank."""

    rank: int
    name: str
    params_done: int
    params_total: int
    bytes_done: int
    bytes_total: int


Progress = Callable[[TransformProgress], Any] | None


def _strategy_arg(value: Any, arg: str) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"The {arg} should be a str, but got {type(value)}.")
    if value and os.path.dirname(value) and not os.path.exists(os.path.dirname(value)):
        raise ValueError(f"The director of {arg}: {value} is not exists.")


def _stage_device_num(lmap: Mapping[str, ParamStrategy] | None) -> int:
    if not lmap:
        return 1
    return next(iter(lmap.values())).device_num


def _stage_num(lmap: Mapping[str, ParamStrategy] | None, label: str) -> int:
    if not lmap:
        return 1
    stages = sorted({s for p in lmap.values() for s in p.stages})
    if stages != list(range(len(stages))):
        raise ValueError(f"The strategy file {label} for pipeline parallel does not contain all "
                         f"stages (it has {stages}); merge every stage's file with "
                         "merge_pipeline_strategys.")
    return len(stages)


@dataclass
class _DstInfo:
    device_num: int
    stage_num: int

    @property
    def world(self) -> int:
        return self.device_num * self.stage_num


class Resharder:
    """Plans and produces destination slices from a set of source rank files."""

    def __init__(self, files: Mapping[int, Any], src_strategy: Any, dst_strategy: Any, *,
                 tool: str = "transform_checkpoints"):
        self.tool = tool
        self.src_label = src_strategy if isinstance(src_strategy, str) else "src_strategy"
        self.src_map = load_layout_map(src_strategy)
        self.dst_map = load_layout_map(dst_strategy)
        self.dst = _DstInfo(_stage_device_num(self.dst_map),
                            _stage_num(self.dst_map, str(dst_strategy)))
        self.src_stage_num = _stage_num(self.src_map, str(src_strategy))
        self.src_device_num = _stage_device_num(self.src_map)
        self.files: dict[int, Any] = {
            int(r): SourceFile(p, int(r)) if isinstance(p, str) else p
            for r, p in sorted(files.items())}
        if self.src_map is None:
            # an unsliced source: only rank 0's file (MindSpore's rule)
            if 0 not in self.files:
                raise TransformError(f"For '{tool}', the source strategy is None (unsliced) so "
                                     "rank 0's checkpoint is needed, but it is missing.")
            self.files = {0: self.files[0]}
        self._plans: dict[str, ParamPlan] = {}
        self._order: list[str] | None = None

    def close(self) -> None:
        for f in self.files.values():
            f.close()

    def __enter__(self) -> Resharder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ naming

    def names(self) -> list[str]:
        """Every parameter in the source files, in first-seen file order."""
        if self._order is None:
            seen: dict[str, None] = {}
            for f in self.files.values():
                for n in f.entries():
                    seen.setdefault(n, None)
            self._order = list(seen)
        return self._order

    def _shapes(self, name: str) -> dict[int, Any]:
        out: dict[int, Any] = {}
        for r, f in self.files.items():
            if name in f:
                info = f.info(name)
                out[r] = info.shape if info.dtype is not None else ("str",)  # type: ignore
        return out

    def plan(self, name: str) -> ParamPlan | None:
        """The plan of a tensor (None for str entries, which are copied as they are)."""
        if name in self._plans:
            return self._plans[name]
        shapes = self._shapes(name)
        if any(s == ("str",) for s in shapes.values()):
            return None
        parent_shapes: dict[int, Any] | None = None
        if self.src_map is not None and name not in self.src_map:
            parent = parent_name(name, self.src_map)
            if parent is not None:
                parent_shapes = {r: f.info(parent).shape for r, f in self.files.items()
                                 if parent in f}
        try:
            p = resolve(name, shapes, self.src_map, self.dst_map, parent_shapes,
                        {r: f.path for r, f in self.files.items()})
        except TransformError as e:
            raise TransformError(f"For '{self.tool}': {e}") from None
        if p.how == "replicated" and self.src_map is not None and len(shapes) > 1 \
                and math.prod(p.full_shape) > 1:
            self._check_replicated(name, sorted(shapes))
        self._plans[name] = p
        return p

    def _check_replicated(self, name: str, ranks: list[int]) -> None:
        """A tensor outside the strategy is taken as replicated only if every rank holds the
        same bytes: equal shapes alone cannot tell a replica from an even slice."""
        first: tuple[int, bytes] | None = None
        for r in ranks:
            value = self.files[r].read(name)
            h = hashlib.sha256(np.ascontiguousarray(value).reshape(-1).view(np.uint8).data).digest()
            if first is None:
                first = (r, h)
            elif h != first[1]:
                raise TransformError(
                    f"For '{self.tool}': parameter '{name}' is not in the source strategy file "
                    f"and its values differ between rank {first[0]} "
                    f"({self.files[first[0]].path}) and rank {r} ({self.files[r].path}), so "
                    "it is sliced (or rank-local) in a way the transform cannot know; copying "
                    "one rank's slice would give it the wrong shape. Save the strategy with "
                    "every parameter (MindSpore: disable_strategy_file_only_for_trainable_"
                    "params()) or leave it out of the source checkpoints.")

    def dst_world(self) -> int:
        return self.dst.world

    def names_for(self, rank: int) -> list[str]:
        """The entries destination ``rank`` gets, in source order."""
        out = []
        for n in self.names():
            if self.dst_map is not None and n in self.dst_map:
                if not self.dst_map[n].stages or \
                        rank // self.dst.device_num not in self.dst_map[n].stages:
                    continue
            out.append(n)
        return out

    # ------------------------------------------------------------------ producing

    def produce(self, name: str, rank: int) -> Any:
        """The destination slice of ``name`` for global ``rank`` (reads only overlaps)."""
        p = self.plan(name)
        if p is None:  # str entry: from the lowest rank holding it
            f = next(f for f in self.files.values() if name in f)
            return f.read(name)
        dst_box = p.dst_box(rank)
        if dst_box is None:
            raise TransformError(f"internal: rank {rank} does not hold '{name}'")
        holders = {r for r, f in self.files.items() if name in f}
        pieces = choose_sources(p.src, dst_box, holders, rank, set(), name)
        dtype = self.files[pieces[0][0]].info(name).dtype
        if dtype is None:
            raise TransformError(f"'{name}' is a str entry; a sliced str cannot be resharded")
        out = np.empty(box_shape(dst_box), dtype=dtype.np_dtype)
        for src_rank, ov in pieces:
            src_box = p.src.box(src_rank)
            if src_box is None:
                raise TransformError(f"internal: source rank {src_rank} does not hold '{name}'")
            region = tuple((s.start, s.stop) for s in relative(ov, src_box))
            data = self.files[src_rank].read(name, region)
            out[relative(ov, dst_box)] = data
            self.files[src_rank].release()
        return out

    def dst_shape(self, name: str, rank: int) -> tuple[Any, tuple[int, ...] | None]:
        p = self.plan(name)
        if p is None:
            return None, None
        f = next(f for f in self.files.values() if name in f)
        box = p.dst_box(rank)
        if box is None:
            raise TransformError(f"internal: rank {rank} does not hold '{name}'")
        return f.info(name).dtype, box_shape(box)

    def write_rank(self, rank: int, path: str, fmt: str, progress: Progress = None,
                   names: list[str] | None = None) -> None:
        names = self.names_for(rank) if names is None else names
        plan = []
        sizes = []
        for n in names:
            dtype, shape = self.dst_shape(n, rank)
            if dtype is None and fmt == "safetensors":
                raise TransformError(f"For '{self.tool}', '{n}' is a str entry, which "
                                     "safetensors cannot hold; write output_format='ckpt'.")
            plan.append((n, dtype, shape, _producer(self, n, rank)))
            sizes.append(0 if shape is None else int(np.prod(shape)) * dtype.itemsize)
        total = sum(sizes)
        done = [0, 0]

        def tracked(i: int, produce: Callable[[], Any]) -> Callable[[], Any]:
            def run() -> Any:
                value = produce()
                done[0] += 1
                done[1] += sizes[i]
                if progress is not None:
                    progress(TransformProgress(rank, names[i], done[0], len(names), done[1],
                                               total))
                return value
            return run

        plan = [(n, d, s, tracked(i, pr)) for i, (n, d, s, pr) in enumerate(plan)]
        write_streaming(path, fmt, plan)


def _producer(rs: Resharder, name: str, rank: int) -> Callable[[], Any]:
    return lambda: rs.produce(name, rank)


# --------------------------------------------------------------------------- rank_list


def rank_list_for_transform(rank_id: int, src_strategy_file: str | None = None,
                            dst_strategy_file: str | None = None) -> list[int]:
    """The source ranks whose checkpoints destination ``rank_id`` needs (MindSpore's name).

    Plain ints, in MindSpore's (descending) order, one holder per distinct source slice,
    preferring the destination's own id among replicas.
    """
    if not isinstance(rank_id, int) or isinstance(rank_id, bool):
        raise TypeError("The rank_id should be a int.")
    if src_strategy_file is None:
        return [0]
    src_map = load_layout_map(src_strategy_file)
    dst_map = load_layout_map(dst_strategy_file)
    if not src_map:
        raise ValueError("The src_strategy_file is empty.")
    return _needed(rank_id, src_map, dst_map, str(dst_strategy_file))


def _needed(rank_id: int, src_map: Mapping[str, ParamStrategy],
            dst_map: Mapping[str, ParamStrategy] | None, label: str) -> list[int]:
    dst_dev = _stage_device_num(dst_map)
    dst_stages = _stage_num(dst_map, label)
    if not 0 <= rank_id < dst_dev * dst_stages:
        raise ValueError(f"Rank {rank_id} is not in the destination strategy {label}: it has "
                         f"{dst_stages} stage(s) of {dst_dev} devices.")
    stage = rank_id // dst_dev
    chosen: set[int] = set()
    for name, sps in src_map.items():
        dps = dst_map.get(name) if dst_map is not None else None
        if dst_map is not None and dps is not None and stage not in dps.stages:
            continue
        s_lay, d_lay = probe_layouts(sps, dps)
        box = d_lay.box(rank_id) if d_lay is not None else \
            tuple((0, d) for d in s_lay.full_shape)
        if box is None:
            continue
        choose_sources(s_lay, box, set(s_lay.ranks()), rank_id, chosen, name)
    return sorted(chosen, reverse=True)


rank_list_for_convert = rank_list_for_transform


# --------------------------------------------------------------------------- by rank


def _check_files_map(files: Any, tool: str) -> None:
    if not isinstance(files, dict):
        raise TypeError("The checkpoint_files_map should be a dict.")
    for rank, f in files.items():
        if not isinstance(rank, int):
            raise TypeError(f"For '{tool}', the keys of the files map must be rank ints, got "
                            f"{rank!r}.")
        if not isinstance(f, str) or not os.path.exists(f):
            raise ValueError(f"Checkpoint file {f} in rank {rank} not exits: ")


def transform_checkpoint_by_rank(rank_id: int, checkpoint_files_map: dict[int, str],
                                 save_checkpoint_file_name: str,
                                 src_strategy_file: str | None = None,
                                 dst_strategy_file: str | None = None, *,
                                 progress: Progress = None) -> None:
    """Write destination rank ``rank_id``'s checkpoint from the source files it needs."""
    _check_files_map(checkpoint_files_map, "transform_checkpoint_by_rank")
    if not isinstance(rank_id, int):
        raise TypeError("The rank_id should be a int.")
    if not isinstance(save_checkpoint_file_name, str):
        raise TypeError("The save_checkpoint_file_name should be a str.")
    if save_checkpoint_file_name[-5:] != ".ckpt":
        raise ValueError(f"The save_checkpoint_file_name {save_checkpoint_file_name} should "
                         "end with .ckpt")
    _by_rank(rank_id, checkpoint_files_map, save_checkpoint_file_name, src_strategy_file,
             dst_strategy_file, "ckpt", "transform_checkpoint_by_rank", progress)


def transform_safetensors_by_rank(rank_id: int, safetensor_files_map: dict[int, str],
                                  save_safetensor_file_name: str,
                                  src_strategy_file: str | None = None,
                                  dst_strategy_file: str | None = None, *,
                                  progress: Progress = None) -> None:
    """``transform_checkpoint_by_rank`` for safetensors sources and output."""
    _check_files_map(safetensor_files_map, "transform_safetensors_by_rank")
    if not isinstance(rank_id, int):
        raise TypeError("The rank_id should be a int.")
    if not isinstance(save_safetensor_file_name, str):
        raise TypeError("The save_safetensor_file_name should be a str.")
    if format_from_name(save_safetensor_file_name) != "safetensors":
        raise ValueError(f"The save_safetensor_file_name {save_safetensor_file_name} should "
                         "end with .safetensors")
    _by_rank(rank_id, safetensor_files_map, save_safetensor_file_name, src_strategy_file,
             dst_strategy_file, "safetensors", "transform_safetensors_by_rank", progress)


def _by_rank(rank_id: int, files: Mapping[int, str], out: str, src: Any, dst: Any, fmt: str,
             tool: str, progress: Progress) -> None:
    _strategy_arg(src, "src_strategy_file")
    _strategy_arg(dst, "dst_strategy_file")
    with Resharder(files, src, dst, tool=tool) as rs:
        if not 0 <= rank_id < rs.dst_world():
            raise ValueError(f"For '{tool}', rank {rank_id} is not in the destination strategy "
                             f"({rs.dst.stage_num} stage(s) of {rs.dst.device_num} devices).")
        rs.write_rank(rank_id, out, fmt, progress)


convert_checkpoint_by_rank = transform_checkpoint_by_rank


# --------------------------------------------------------------------------- directories


_NUMS = re.compile(r"\d+")


def _newest(paths: list[str]) -> str:
    """The file with the largest trailing numbers (``net-1_10`` over ``net-1_9``)."""
    def key(p: str) -> tuple[list[int], str]:
        base = os.path.basename(p)
        return [int(x) for x in _NUMS.findall(base)], base
    return max(paths, key=key)


def collect_rank_files(src_dir: str, tool: str = "transform_checkpoints",
                       ) -> tuple[dict[int, str], str]:
    """``{rank: file}`` of ``src_dir/rank_<r>/`` and the format (``"ckpt"``/``"safetensors"``)."""
    if not isinstance(src_dir, str) or not os.path.isdir(src_dir):
        raise NotADirectoryError(f"src_checkpoints_dir {src_dir} is not a directory.")
    found: dict[str, dict[int, str]] = {"ckpt": {}, "safetensors": {}}
    for d in glob.glob(os.path.join(glob.escape(src_dir), "rank_*")):
        tail = os.path.basename(d)[5:]
        if not tail.isdigit() or not os.path.isdir(d):
            continue
        for fmt in found:
            files = [p for p in glob.glob(os.path.join(glob.escape(d), f"*.{fmt}"))
                     if os.path.isfile(p)]
            if files:
                found[fmt][int(tail)] = _newest(files)
    if found["ckpt"] and found["safetensors"]:
        raise ValueError(f"For '{tool}', the 'src_checkpoints_dir' cannot contain both ckpt "
                         "file and safetensors file simultaneously")
    fmt = "ckpt" if found["ckpt"] else "safetensors"
    if not found[fmt]:
        raise ValueError(f"For '{tool}', the 'src_checkpoints_dir' can not be empty: "
                         f"{src_dir} has no rank_<r>/ directory with a .ckpt or .safetensors "
                         "file.")
    return found[fmt], fmt


def _by_stage_case(src: Any, dst: Any) -> int | None:
    """MindSpore's by-stage variant: a one-stage source whose parameters are a strict subset
    of the destination's; returns the source stage."""
    if not (isinstance(src, str) and isinstance(dst, str)):
        return None
    sm, dm = load_layout_map(src), load_layout_map(dst)
    if not sm or not dm or _stage_num(sm, src) != 1 or _stage_num(dm, dst) != 1:
        return None
    opt = ("accu_grads", "adam_v", "adam_m")
    sk = {n for n in sm if not n.startswith(opt)}
    dk = {n for n in dm if not n.startswith(opt)}
    if not (sk <= dk and len(sk) < len(dk)):
        return None
    items = read_strategy(src).strategy_items
    if not items:
        raise ValueError(f"The strategy file {src} if empty.")
    return items[0].stage


def transform_checkpoints(src_checkpoints_dir: str, dst_checkpoints_dir: str, ckpt_prefix: str,
                          src_strategy_file: str | None = None,
                          dst_strategy_file: str | None = None, process_num: int = 1,
                          output_format: str = "ckpt", *, progress: Progress = None) -> None:
    """Reshard ``src/rank_<r>/`` checkpoints into ``dst/rank_<r>/<prefix><r>.<fmt>``.

    ``process_num`` destination ranks are written at a time (threads; each holds at most one
    parameter's destination slice).  ``progress`` gets a :class:`TransformProgress` after
    each parameter.
    """
    if output_format not in ("ckpt", "safetensors"):
        raise ValueError("For 'transform_checkpoints', the output_format must be 'ckpt' or "
                         f"'safetensors', but got {output_format!r}.")
    if not isinstance(ckpt_prefix, str):
        raise TypeError("The ckpt_prefix should be a str.")
    if not isinstance(process_num, int) or isinstance(process_num, bool) or process_num < 1:
        raise ValueError(f"For 'transform_checkpoints', process_num must be a positive int, "
                         f"got {process_num!r}.")
    if "/" in ckpt_prefix or "\\" in ckpt_prefix or ".." in ckpt_prefix:
        raise ValueError(f"For 'transform_checkpoints', ckpt_prefix {ckpt_prefix!r} must be a "
                         "plain file-name prefix.")
    _strategy_arg(src_strategy_file, "src_strategy_file")
    _strategy_arg(dst_strategy_file, "dst_strategy_file")
    files, _fmt = collect_rank_files(src_checkpoints_dir)
    os.makedirs(dst_checkpoints_dir, exist_ok=True)
    stage = _by_stage_case(src_strategy_file, dst_strategy_file)
    if stage is not None:  # one stage's files, numbered from the stage's first rank
        n = _stage_device_num(load_layout_map(src_strategy_file))
        files = {r - stage * n: files[r] for r in range(stage * n, stage * n + n) if r in files}
    with Resharder(files, src_strategy_file, dst_strategy_file) as rs:
        _transform_all(rs, files, dst_checkpoints_dir, ckpt_prefix, output_format, stage,
                       process_num, progress)


def _transform_all(rs: Resharder, files: Mapping[int, str], dst_dir: str, prefix: str,
                   output_format: str, stage: int | None, process_num: int,
                   progress: Progress) -> None:
    _check_needed(rs, files)
    ranks = list(range(rs.dst_world()))
    names_of: dict[int, list[str] | None] = {r: None for r in ranks}
    suffix = {r: "" for r in ranks}
    if stage is not None:  # by stage: only the source stage's parameters, "_part<stage>"
        if rs.src_map is None:
            raise TransformError("transform by stage needs the source strategy file")
        for r in ranks:
            names_of[r] = [n for n in rs.names_for(r)
                           if n in rs.src_map or parent_name(n, rs.src_map) is not None
                           or n not in (rs.dst_map or {})]
            suffix[r] = f"_part{stage}"

    def one(r: int) -> None:
        out = os.path.join(dst_dir, f"rank_{r}", f"{prefix}{r}{suffix[r]}.{output_format}")
        rs.write_rank(r, out, output_format, progress, names_of[r])

    _run(one, ranks, process_num)


def _check_needed(rs: Resharder, files: Mapping[int, str]) -> None:
    # fail early, naming the missing source rank, before anything is written
    src_world = rs.src_device_num * rs.src_stage_num if rs.src_map is not None else 1
    missing = [r for r in range(src_world) if r not in files]
    if not missing:
        return
    if rs.src_map is None:
        raise ValueError("The checkpoint file of rank0 is needed, but it is missing.")
    for r in range(rs.dst_world()):
        need = set(_needed(r, rs.src_map, rs.dst_map, "dst_strategy_file"))
        lost = sorted(need & set(missing))
        if lost:
            raise ValueError(f"The checkpoint file of rank{lost[0]} is needed for converting "
                             f"rank{r}'s checkpoint, but it is missing.")


def _run(fn: Callable[[int], None], ranks: list[int], workers: int) -> None:
    if workers <= 1 or len(ranks) <= 1:
        for r in ranks:
            fn(r)
        return
    with ThreadPoolExecutor(min(workers, len(ranks))) as pool:
        for f in [pool.submit(fn, r) for r in ranks]:
            f.result()


convert_checkpoints = transform_checkpoints


def transform_safetensors_by_stage(src_safetensors_dir: str, dst_safetensors_dir: str,
                                   ckpt_prefix: str, src_strategy_file: str,
                                   dst_strategy_file: str | None = None, *,
                                   progress: Progress = None) -> None:
    """The by-stage transform: one pipeline stage's source ranks into every destination rank,
    ``dst/rank_<r>/<prefix><r>_part<stage>.safetensors`` (MindSpore's layout)."""
    if not isinstance(src_strategy_file, str):
        raise TypeError("For 'transform_safetensors_by_stage', src_strategy_file must be the "
                        "path of the stage's strategy file.")
    items = read_strategy(src_strategy_file).strategy_items
    if not items:
        raise ValueError(f"The strategy file {src_strategy_file} if empty.")
    stage = items[0].stage
    files, _fmt = collect_rank_files(src_safetensors_dir, "transform_safetensors_by_stage")
    src_map = load_layout_map(src_strategy_file)
    n = _stage_device_num(src_map)
    start = stage * n
    local = {r - start: files[r] for r in range(start, start + n) if r in files}
    with Resharder(local, src_strategy_file, dst_strategy_file,
                   tool="transform_safetensors_by_stage") as rs:
        for r in range(rs.dst.device_num):
            out = os.path.join(dst_safetensors_dir, f"rank_{r}",
                               f"{ckpt_prefix}{r}_part{stage}.safetensors")
            rs.write_rank(r, out, "safetensors", progress)

