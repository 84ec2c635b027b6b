"""Whole-model ("unified") safetensors and the loaders built on them.

* ``unified_safetensors``: per-rank safetensors -> full tensors in ``part<i>.safetensors``
  (greedy byte balance, about 3 GiB each), ``param_name_map.json`` (Hugging Face index style)
  and ``hyper_param.safetensors`` (tensors outside the strategy).
* ``load_distributed_checkpoint``: from a unified directory, each destination rank's slices
  (``dst/rank_<r>/net.<fmt>``, or straight into a network); or, for ``.ckpt`` files and a
  network, merge with the training strategy and split by a predict strategy.
* ``load_segmented_checkpoints``: every ``.ckpt`` of a directory into one dict.
* ``get_ckpt_path_with_strategy``: a replica's file when a rank's own file is missing.

MindSpore's names, arguments and file layout.  Differences: a ``choice_func`` that drops a
parameter drops it everywhere (MindSpore still writes rank 0's slice into
``hyper_param.safetensors``); tensors outside the strategy are merged when they inherit a
parameter's layout (``moments.w``) and refused when their shapes differ between ranks, instead
of being copied from rank 0 with a wrong shape; files in a directory are taken in sorted order.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .. import tensor as T
from ..pipeline import format_from_name
from ..storage import LOCAL
from ._io import EntryInfo, SourceFile, write_streaming
from ._plan import TransformError, probe_layouts
from .strategy import ParamStrategy, load_layout_map
from .transform import Progress, Resharder, TransformProgress, collect_rank_files

__all__ = [
    "unified_safetensors",
    "load_distributed_checkpoint",
    "load_segmented_checkpoints",
    "get_ckpt_path_with_strategy",
    "UnifiedSource",
]

PART_BYTES = 3 << 30  # MindSpore: ceil(total / 3 GiB) parts


def _split_weight_dict(sizes: Mapping[str, int], num_groups: int) -> list[list[str]]:
    """MindSpore's greedy split: largest first, into the group with the fewest bytes."""
    groups: list[list[str]] = [[] for _ in range(num_groups)]
    totals = [0] * num_groups
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        i = totals.index(min(totals))
        groups[i].append(name)
        totals[i] += size
    return groups


def _choice(choice_func: Callable[[str], Any] | None, name: str) -> str | None:
    """The output name of ``name`` (None: dropped)."""
    if choice_func is None:
        return name
    out = choice_func(name)
    if isinstance(out, bool):
        return name if out else None
    if isinstance(out, str):
        return out
    raise TypeError(f"For 'unified_safetensors', choice_func must return a bool or a str, but "
                    f"returned {type(out).__name__} for '{name}'.")


def unified_safetensors(src_dir: str, src_strategy_file: str, dst_dir: str,
                        merge_with_redundancy: bool = True, file_suffix: str | None = None,
                        max_process_num: int = 64, choice_func: Callable[[str], Any] | None = None,
                        split_dst_file: tuple[int, int] | tuple[()] = (), *,
                        progress: Progress = None) -> None:
    """Merge ``src_dir/rank_<r>/*.safetensors`` into full tensors in ``dst_dir``.

    ``merge_with_redundancy`` is accepted for MindSpore compatibility: complete and
    de-duplicated sources are both merged right (each slice is read from a rank that has it).
    ``split_dst_file=(k, n)`` writes only machine ``k``'s share (1-based) of the parts;
    machine 1 also writes the map and the hyper parameters.  ``max_process_num`` parts are
    written at a time (threads).
    """
    if not isinstance(src_strategy_file, str):
        raise TypeError("For 'unified_safetensors', src_strategy_file must be the path of the "
                        "source strategy file.")
    if not isinstance(merge_with_redundancy, bool):
        raise TypeError("For 'unified_safetensors', merge_with_redundancy must be bool.")
    if split_dst_file:
        if (not isinstance(split_dst_file, tuple) or len(split_dst_file) != 2
                or not all(isinstance(x, int) for x in split_dst_file)
                or not 1 <= split_dst_file[0] <= split_dst_file[1]):
            raise ValueError("For 'unified_safetensors', split_dst_file must be (k, n) with "
                             f"1 <= k <= n, got {split_dst_file!r}.")
    if os.path.isfile(src_dir):
        raise ValueError("For 'unified_safetensors', the 'src_dir' can not be a file.")
    files = _collect(src_dir, file_suffix)
    os.makedirs(dst_dir, exist_ok=True)
    with Resharder(files, src_strategy_file, None, tool="unified_safetensors") as rs:
        if rs.src_map is None:
            raise TransformError(f"For 'unified_safetensors', no source strategy was found for "
                                 f"{src_dir}; pass src_strategy_file.")
        merged: dict[str, str] = {}  # source name -> output name
        hyper: dict[str, str] = {}
        sizes: dict[str, int] = {}
        for name in rs.names():
            out = _choice(choice_func, name)
            if out is None:
                continue
            plan = rs.plan(name)
            if plan is None or plan.how == "replicated":
                hyper[name] = out
                continue
            merged[name] = out
            dtype = rs.files[min(r for r, f in rs.files.items() if name in f)].info(name).dtype
            if dtype is None:
                raise TransformError(f"For 'unified_safetensors', '{name}' is a str entry; it "
                                     "cannot be stored in safetensors.")
            sizes[name] = math.prod(plan.full_shape) * dtype.itemsize
        total = sum(sizes.values())
        n_parts = min(math.ceil(total / PART_BYTES), len(sizes)) if sizes else 0
        if sizes and n_parts == 0:
            n_parts = 1
        groups = _split_weight_dict(sizes, n_parts) if n_parts else []
        first = not split_dst_file or split_dst_file[0] == 1
        if split_dst_file:
            k, n = split_dst_file
            avg, rem = divmod(len(groups), n)
            start = avg * (k - 1) + min(k - 1, rem)
            mine = list(range(start, start + avg + (1 if k <= rem else 0)))
        else:
            mine = list(range(len(groups)))
        if first:
            if hyper:
                write_streaming(os.path.join(dst_dir, "hyper_param.safetensors"), "safetensors",
                                [(out, rs.files[min(r for r, f in rs.files.items()
                                                    if name in f)].info(name).dtype,
                                  rs.dst_shape(name, 0)[1], _full(rs, name))
                                 for name, out in hyper.items()])
            weight_map = {merged[n]: f"part{i}.safetensors" for i, g in enumerate(groups)
                          for n in g}
            doc = {"metadata": {"total_size": total}, "weight_map": weight_map}
            with LOCAL.open_write(os.path.join(dst_dir, "param_name_map.json"), mode=0o644) as w:
                w.write(json.dumps(doc, indent=4).encode())
        done = [0, 0]

        def write_part(i: int) -> None:
            plan = []
            for name in groups[i]:
                dtype, shape = rs.dst_shape(name, 0)
                plan.append((merged[name], dtype, shape, _tracked(rs, name, sizes, done,
                                                                  len(sizes), total, progress)))
            write_streaming(os.path.join(dst_dir, f"part{i}.safetensors"), "safetensors", plan)

        from .transform import _run

        _run(write_part, mine, max(1, int(max_process_num)))


def _full(rs: Resharder, name: str) -> Callable[[], Any]:
    return lambda: rs.produce(name, 0)


def _tracked(rs: Resharder, name: str, sizes: Mapping[str, int], done: list[int], n: int,
             total: int, progress: Progress) -> Callable[[], Any]:
    def run() -> Any:
        value = rs.produce(name, 0)
        done[0] += 1
        done[1] += sizes[name]
        if progress is not None:
            progress(TransformProgress(0, name, done[0], n, done[1], total))
        return value
    return run


def _collect(src_dir: str, file_suffix: str | None) -> dict[int, str]:
    if file_suffix is None:
        files, fmt = collect_rank_files(src_dir, "unified_safetensors")
        if fmt != "safetensors":
            raise ValueError(f"For 'unified_safetensors', {src_dir} holds .ckpt files; convert "
                             "them with transform_checkpoints(..., output_format='safetensors') "
                             "or ckpt_to_safetensors first.")
        return files
    out: dict[int, str] = {}
    for d in glob.glob(os.path.join(glob.escape(src_dir), "rank_*")):
        tail = os.path.basename(d)[5:]
        if tail.isdigit():
            got = sorted(glob.glob(os.path.join(glob.escape(d), f"*{file_suffix}.safetensors")))
            if got:
                out[int(tail)] = got[-1]
    if not out:
        raise ValueError(f"For 'unified_safetensors', no rank_<r>/*{file_suffix}.safetensors "
                         f"file in {src_dir}.")
    return out


# --------------------------------------------------------------------------- unified reader


class UnifiedSource:
    """The files of a unified directory seen as one full-tensor source (rank 0).

    ``name_map`` maps the names asked for to the names stored (MindSpore's ``name_map``).
    """

    def __init__(self, directory: str, name_map: Mapping[str, str] | None = None):
        self.path = directory
        self.rank = 0
        if not os.path.isdir(directory):
            raise ValueError(f"For 'load_distributed_checkpoint', unified_safetensors_dir "
                             f"{directory} is not a directory.")
        listing = sorted(os.listdir(directory))
        st = [f for f in listing if format_from_name(f) == "safetensors"]
        self._files: dict[str, SourceFile] = {}
        where: dict[str, str] = {}
        if "param_name_map.json" in listing:
            with open(os.path.join(directory, "param_name_map.json"), encoding="utf-8") as f:
                doc = json.load(f)
            wm = doc.get("weight_map", doc) if isinstance(doc, dict) else None
            if not isinstance(wm, dict):
                raise ValueError(f"{directory}/param_name_map.json has no weight_map.")
            where.update({str(k): str(v) for k, v in wm.items()})
        elif len(st) == 1:
            sf = SourceFile(os.path.join(directory, st[0]))
            where.update({k: st[0] for k in sf.entries()})
            sf.close()
        else:
            raise ValueError("For 'load_parallel_checkpoint', there must be a JSON file named "
                             f"'param_name_map.json' in {directory}.")
        self.hyper: list[str] = []
        if "hyper_param.safetensors" in listing and len(st) > 1:
            hp = self._file("hyper_param.safetensors")
            for k in hp.entries():
                where.setdefault(k, "hyper_param.safetensors")
                self.hyper.append(k)
        inv = {v: k for k, v in (name_map or {}).items()}
        self._where = {inv.get(k, k): (v, k) for k, v in where.items()}

    def _file(self, fname: str) -> SourceFile:
        if fname not in self._files:
            self._files[fname] = SourceFile(os.path.join(self.path, fname), 0)
        return self._files[fname]

    def entries(self) -> dict[str, EntryInfo]:
        return {n: self.info(n) for n in self._where}

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def info(self, name: str) -> EntryInfo:
        fname, stored = self._where[name]
        f = self._file(fname)
        if stored not in f:
            raise TransformError(f"{self.path}: param_name_map.json puts '{stored}' in {fname}, "
                                 "which does not hold it.")
        e = f.info(stored)
        return EntryInfo(name, e.dtype, e.shape)

    def read(self, name: str, box: Any = None) -> Any:
        fname, stored = self._where[name]
        return self._file(fname).read(stored, box)

    def release(self) -> None:
        pass

    def close(self) -> None:
        for f in self._files.values():
            f.close()


def _current_rank(rank_id: int | None, what: str) -> int:
    if rank_id is not None:
        if not isinstance(rank_id, int) or isinstance(rank_id, bool) or rank_id < 0:
            raise TypeError(f"For '{what}', rank_id must be a non-negative int, got {rank_id!r}.")
        return rank_id
    for var in ("RANK_ID", "RANK"):
        v = os.environ.get(var)
        if v is not None and v.isdigit():
            return int(v)
    torch = sys.modules.get("torch")  # a process group exists only if torch is in use
    if torch is not None:
        dist = getattr(torch, "distributed", None)
        if dist is not None and dist.is_available() and dist.is_initialized():
            return int(dist.get_rank())
    return 0


def _predict_map(predict_strategy: Any) -> dict[str, ParamStrategy] | None:
    if predict_strategy is None:
        return None
    if isinstance(predict_strategy, str):
        return load_layout_map(predict_strategy)
    if not isinstance(predict_strategy, dict):
        raise TypeError("For 'load_distributed_checkpoint', predict_strategy must be a dict, a "
                        f"strategy file path or None, but got {type(predict_strategy)}.")
    out = {}
    for name, v in predict_strategy.items():
        if not isinstance(v, (list, tuple)) or len(v) < 2:
            raise ValueError(f"For 'load_distributed_checkpoint', predict_strategy['{name}'] "
                             "must be [dev_matrix, tensor_map, ...].")
        if len(v) > 5 and v[5]:
            raise NotImplementedError(
                f"For 'load_distributed_checkpoint', predict_strategy['{name}'] names an "
                f"optimizer-shard group {v[5]!r}; mindckpt has no communication groups to "
                "resolve it. Give the layout without the group.")
        tmap = tuple(tuple(e) if isinstance(e, (list, tuple)) else int(e) for e in v[1])
        split = tuple(v[2]) if len(v) > 2 and v[2] else ()
        out[name] = ParamStrategy(name, tuple(v[0]), tmap, split, 0, 0, 0, (0,))
    return out


def load_distributed_checkpoint(network: Any, checkpoint_filenames: list[str] | None = None,
                                predict_strategy: Any = None,
                                train_strategy_filename: str | None = None,
                                strict_load: bool = False, dec_key: bytes | None = None,
                                dec_mode: str = "AES-GCM", format: str = "ckpt",  # noqa: A002
                                unified_safetensors_dir: str | None = None,
                                dst_safetensors_dir: str | None = None,
                                rank_id: int | None = None, output_format: str = "safetensors",
                                name_map: dict[str, str] | None = None,
                                max_process_num: int = 64, return_param_dict: bool = False,
                                ) -> Any:
    """MindSpore's ``load_distributed_checkpoint``, file-based (no communication).

    ``format="safetensors"``: from ``unified_safetensors_dir``; with ``network=None`` write
    ``dst_safetensors_dir/rank_<r>/net.<output_format>`` for ``rank_id`` (or every rank of
    ``predict_strategy``); with a network, load rank ``rank_id``'s slices into it.
    ``format="ckpt"``: merge ``checkpoint_filenames`` (rank order) by
    ``train_strategy_filename`` and split by ``predict_strategy`` for rank ``rank_id`` (else
    ``$RANK_ID`` / torch.distributed / 0), then load into ``network``.
    """
    if format not in ("safetensors", "ckpt") or output_format not in ("safetensors", "ckpt"):
        raise ValueError("For 'load_distributed_checkpoint', 'format' and 'output_format' must "
                         f"be 'ckpt' or 'safetensors', but got {format}.")
    if format == "safetensors":
        if unified_safetensors_dir is None:
            raise ValueError("For 'load_distributed_checkpoint', 'unified_safetensors_dir' can "
                             "not be None when format is 'safetensors'.")
        for arg, value in (("checkpoint_filenames", checkpoint_filenames),
                           ("train_strategy_filename", train_strategy_filename),
                           ("dec_key", dec_key)):
            if value is not None:
                raise ValueError(f"For 'load_distributed_checkpoint', {arg} must be None when "
                                 "format is 'safetensors'.")
        if strict_load or dec_mode != "AES-GCM":
            raise ValueError("For 'load_distributed_checkpoint', strict_load and dec_mode must "
                             "be default when format is 'safetensors'.")
        return _from_unified(network, unified_safetensors_dir, predict_strategy,
                             dst_safetensors_dir, rank_id, output_format, name_map,
                             max_process_num, return_param_dict)
    if network is None:
        raise TypeError("For 'load_distributed_checkpoint', network must be a Cell when format "
                        "is 'ckpt'.")
    if not isinstance(checkpoint_filenames, list) or not all(
            isinstance(f, str) for f in checkpoint_filenames):
        raise TypeError("For 'load_distributed_checkpoint', checkpoint_filenames must be a list "
                        "of file names in rank order.")
    if train_strategy_filename is None:
        raise ValueError("For 'load_distributed_checkpoint', train_strategy_filename is needed: "
                         "mindckpt has no auto-parallel context to take it from.")
    if dec_key is not None:
        raise NotImplementedError("For 'load_distributed_checkpoint', encrypted sliced "
                                  "checkpoints are not supported by mindckpt's reshard tools; "
                                  "decrypt them with load_checkpoint/save_checkpoint first.")
    train = load_layout_map(train_strategy_filename)
    if not train:
        return True
    dev = next(iter(train.values())).device_num
    if dev != len(checkpoint_filenames):
        raise ValueError("For 'Load_distributed_checkpoint', the length of "
                         "'checkpoint_filenames' should be equal to the device count of training "
                         f"process. But got the length of 'checkpoint_filenames' is "
                         f"{len(checkpoint_filenames)} and the device count is {dev}.")
    rank = _current_rank(rank_id, "load_distributed_checkpoint")
    files = {i: os.path.abspath(f) for i, f in enumerate(checkpoint_filenames)}
    dst = _predict_map(predict_strategy)
    params = _params_for_rank(files, train, dst, rank, network)
    from .._api import load_param_into_net

    load_param_into_net(network, params, strict_load=strict_load)
    return True


def _net_names(network: Any) -> list[str] | None:
    if network is None:
        return None
    pn = getattr(network, "parameters_and_names", None)
    if pn is not None:
        return [p.name for _, p in pn()]
    sd = getattr(network, "state_dict", None)
    return list(sd().keys()) if sd is not None else None


def _params_for_rank(files: Mapping[int, Any], src: Any, dst: Any, rank: int,
                     network: Any) -> dict[str, Any]:
    with Resharder(files, src, dst, tool="load_distributed_checkpoint") as rs:
        wanted = _net_names(network)
        names = rs.names_for(rank)
        if wanted is not None:
            names = [n for n in names if n in set(wanted)]
        return {n: _param(rs, n, rank) for n in names}


def _param(rs: Resharder, name: str, rank: int) -> Any:
    value = rs.produce(name, rank)
    if isinstance(value, str):
        return value
    f = next(f for f in rs.files.values() if name in f)
    dtype = f.info(name).dtype
    return T.Parameter(T.Tensor(value, dtype=dtype), name=name)


def _from_unified(network: Any, directory: str, predict_strategy: Any, dst_dir: str | None,
                  rank_id: int | None, output_format: str, name_map: Any, max_process_num: int,
                  return_param_dict: bool) -> Any:
    dst = _predict_map(predict_strategy)
    if network is not None:
        rank = _current_rank(rank_id, "load_distributed_checkpoint")
        params = _unified_rank(directory, dst, name_map, rank, network)
        if return_param_dict:
            return params
        from .._api import load_param_into_net

        return load_param_into_net(network, params)
    if dst_dir is None:
        raise ValueError("For 'load_distributed_checkpoint', 'dst_safetensors_dir' can not be "
                         "None when network is None.")
    if rank_id is not None:
        ranks = [_current_rank(rank_id, "load_distributed_checkpoint")]
    elif dst is None:
        ranks = [0]
    else:
        dev = next(iter(dst.values())).device_num
        ranks = list(range(dev * (1 + max(s for p in dst.values() for s in p.stages))))

    def one(r: int) -> None:
        src = UnifiedSource(directory, name_map)
        with Resharder({0: src}, None, predict_strategy if isinstance(predict_strategy, str)
                       else dst, tool="load_distributed_checkpoint") as rs:
            names = _unified_names(rs, src, dst, r)
            plan = []
            for n in names:
                dtype, shape = rs.dst_shape(n, r)
                plan.append((n, dtype, shape, _rank_producer(rs, n, r)))
            write_streaming(os.path.join(dst_dir, f"rank_{r}", f"net.{output_format}"),
                            output_format, plan)

    from .transform import _run

    _run(one, ranks, max(1, int(max_process_num)))
    return True


def _rank_producer(rs: Resharder, name: str, rank: int) -> Callable[[], Any]:
    return lambda: rs.produce(name, rank)


def _unified_names(rs: Resharder, src: UnifiedSource, dst: Mapping[str, ParamStrategy] | None,
                   rank: int) -> list[str]:
    """MindSpore's order: the destination strategy's names (in its stage), then hyper ones."""
    if dst is None:
        names = [n for n in src._where if n not in src.hyper]
    else:
        stage = rank // next(iter(dst.values())).device_num
        names = [n for n, p in dst.items() if n in src and stage in p.stages]
    return names + [h for h in src.hyper if h not in names]


def _unified_rank(directory: str, dst: Any, name_map: Any, rank: int,
                  network: Any) -> dict[str, Any]:
    src = UnifiedSource(directory, name_map)
    with Resharder({0: src}, None, dst, tool="load_distributed_checkpoint") as rs:
        names = _unified_names(rs, src, dst, rank)
        wanted = _net_names(network)
        if wanted is not None:
            names = [n for n in names if n in set(wanted)]
        return {n: _param(rs, n, rank) for n in names}


# --------------------------------------------------------------------------- small loaders


def load_segmented_checkpoints(ckpt_file_dir: str, net: Any = None, strict_load: bool = False,
                               filter_prefix: Any = None, dec_key: bytes | None = None,
                               dec_mode: str = "AES-GCM", specify_prefix: Any = None,
                               choice_func: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Every ``*.ckpt`` in ``ckpt_file_dir`` (sorted by name) loaded into one dict (and into
    ``net``); a name in several files takes the last file's value, as in MindSpore."""
    if not isinstance(ckpt_file_dir, str):
        raise TypeError("The ckpt_file_dir should be a str.")
    if not os.path.isdir(ckpt_file_dir):
        raise ValueError(f"The dst_strategy_file: {ckpt_file_dir} doesn't exist. Or it's not a "
                         "directory")
    from .._api import load_checkpoint

    out: dict[str, Any] = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(ckpt_file_dir), "*.ckpt"))):
        out.update(load_checkpoint(path, net, strict_load, filter_prefix, dec_key, dec_mode,
                                   specify_prefix, choice_func))
    return out


def _replica_ranks(strategy_path: str, rank: int) -> tuple[int, ...]:
    """MindSpore's ``_get_cur_rank_dp``: the smallest replica group of ``rank`` that every
    parameter's group contains (``(rank,)`` when they disagree)."""
    lmap = load_layout_map(strategy_path)
    best: set[int] | None = None
    best_t: tuple[int, ...] = ()
    for name, ps in (lmap or {}).items():
        if name.startswith(("accu_grads", "inputs")):
            continue
        lay, _ = probe_layouts(ps, None)
        for group in lay.replica_groups():
            if rank not in group:
                continue
            if best is None or len(group) < len(best):
                if best is not None and not set(group) <= best:
                    return (rank,)
                best, best_t = set(group), group
            elif not best <= set(group):
                return (rank,)
    return best_t


def get_ckpt_path_with_strategy(cur_ckpt_path: str, cur_strategy_path: str, *,
                                rank_id: int | None = None) -> str | None:
    """The checkpoint to load for this rank: its own (``rank_<r>`` in the path) if it exists,
    else a data-parallel replica's (the same path with ``rank_<replica>``), else None.

    The rank is ``rank_id``, else ``$RANK_ID`` / ``$RANK`` / torch.distributed, else 0.
    """
    rank = _current_rank(rank_id, "get_ckpt_path_with_strategy")
    if f"rank_{rank}" in cur_ckpt_path and os.path.isfile(cur_ckpt_path):
        return cur_ckpt_path
    for r in _replica_ranks(cur_strategy_path, rank):
        candidate = re.sub(r"rank_\d+", f"rank_{r}", cur_ckpt_path)
        if os.path.isfile(candidate):
            return candidate
    return None
