"""Loading into sliced parameters on any world size: reshard on load, reading only what is needed.

Entry points (what ``load_checkpoint`` / ``load_param_into_net`` route to in a process group):

:func:`load_distributed` ``(checkpoint, target)``
    ``checkpoint`` is a committed directory checkpoint (sliced or de-duplicated, saved on any
    number of ranks) or one ordinary file (an integrated save).  ``target`` is a torch module or
    a state_dict of DTensors, or of local tensors with ``layouts=``.  Each rank works out the box
    of the full tensor its local shard covers, intersects it with the saved chunks (one replica
    of each, rotated by rank to spread the reads) and reads just those byte regions, straight
    into its local shard.  No collective is needed; M and N are arbitrary (4 -> 6, 8 -> 3), as
    long as each layout divides the shape.  A directory without a commit marker is refused.
    With ``strategy=`` a MindSpore-written directory (``rank_<r>/`` files, no index) is read
    the same way, its layouts from the strategy file.
:func:`read_shards` ``(checkpoint, layouts, rank)``
    The same, returning ``{name: ndarray}`` of a rank's slices (no target needed).
:func:`restore_redundancy` ``(target, parameter_dict)``
    MindSpore's ``load_param_into_net(..., remove_redundancy=True)``: each rank loaded its own
    de-duplicated file; the owner of each slice sends it point to point to the other ranks of
    its replica set (MindSpore uses an AllReduce with zeros; the result is the same, exact, and
    each receiver gets the bytes once).

Bytes read per rank: the regions of its shard (each element once) plus the headers of the files
it opens; :class:`DistLoadResult` reports both.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from .. import tensor as T
from ..adapters.torch import copy_into, is_torch_module, is_torch_tensor, torch_to_numpy
from ..errors import CheckpointNotFoundError, FormatError
from ..pipeline import CheckpointReader, format_from_name
from ..storage.base import INDEX_NAME, ByteSource, Store, is_committed
from ._dist import Comm, checkpoint_comm, rank_of
from ._index import Chunk, DistIndex, ParamEntry, decode_index
from .dtensor import localize
from .layout import Box, TensorLayout, box_shape, full_box, intersect, relative

__all__ = ["DistLoadResult", "load_distributed", "read_shards", "restore_redundancy",
           "assign_shards",
           "open_source", "is_distributed_checkpoint"]

logger = logging.getLogger("mindckpt")


@dataclass
class DistLoadResult:
    """What a distributed load did on this rank."""

    param_not_load: list[str] = field(default_factory=list)
    ckpt_not_load: list[str] = field(default_factory=list)
    bytes_read: int = 0  # every byte read from storage, headers included
    payload_bytes: int = 0  # the tensor bytes among them
    shard_bytes: int = 0  # the bytes of this rank's local shards that were loaded

    def __iter__(self) -> Any:  # (param_not_load, ckpt_not_load), as load_param_into_net
        return iter((self.param_not_load, self.ckpt_not_load))


class _CountingSource(ByteSource):
    """A source that counts the bytes read through it (no mapping, so every read counts)."""

    def __init__(self, inner: ByteSource, counter: list[int]):
        self.inner = inner
        self.name = inner.name
        self.size = inner.size
        self.counter = counter

    def readinto_at(self, mv: memoryview, offset: int) -> int:
        got = self.inner.readinto_at(mv, offset)
        self.counter[0] += got
        return got

    def fileno(self) -> int | None:
        return self.inner.fileno()

    def close(self) -> None:
        self.inner.close()


def _resolve(target: Any, storage_options: dict[str, Any] | None) -> tuple[Store, str]:
    from ..storage.urls import resolve

    return resolve(target, storage_options)


def is_distributed_checkpoint(path: Any, storage_options: dict[str, Any] | None = None) -> bool:
    """Whether ``path`` is a directory checkpoint written by :mod:`mindckpt.parallel.save`
    (committed or not): the routing test for ``load_checkpoint``."""
    store, key = _resolve(path, storage_options)
    return store.isdir(key) and store.exists(store.join(key, INDEX_NAME))


class _Source:
    """A checkpoint opened for region reads: its entries and where their chunks are."""

    def __init__(self, store: Store, key: str, params: dict[str, ParamEntry], root: str,
                 *, dec_key: bytes | None, dec_mode: str, fmt: str | None):
        self.store = store
        self.key = key
        self.params = params
        self.root = root  # chunk files are relative to it ("" for a single file)
        self.dec_key = dec_key
        self.dec_mode = dec_mode
        self.fmt = fmt
        self.counter = [0]
        self.payload = 0
        self._readers: dict[str, CheckpointReader] = {}

    def reader(self, file: str) -> CheckpointReader:
        r = self._readers.get(file)
        if r is None:
            key = self.store.join(self.root, file) if self.root else file
            src = _CountingSource(self.store.open_read(key), self.counter)
            try:
                r = CheckpointReader(src, self.store.describe(key), format=format_from_name(key),
                                     dec_key=self.dec_key, dec_mode=self.dec_mode)
            except BaseException:
                src.close()
                raise
            self._readers[file] = r
        return r

    def close(self) -> None:
        for r in self._readers.values():
            r.close()
        self._readers.clear()


def _mindspore_params(directory: str, strategy: Any) -> dict[str, ParamEntry]:
    """The chunks of a MindSpore-style directory (``rank_<r>/<file>`` plus a strategy file, no
    index): layouts from the strategy, shapes from the files' headers (part 1's planner)."""
    import os

    from .transform import Resharder, collect_rank_files

    files, _fmt = collect_rank_files(directory, "load_distributed")
    rs = Resharder(files, strategy, None, tool="load_distributed")
    out: dict[str, ParamEntry] = {}
    rel = {r: os.path.relpath(p, directory) for r, p in files.items()}
    try:
        for name in rs.names():
            holders = sorted(r for r, f in rs.files.items() if name in f)
            plan = rs.plan(name)
            if plan is None:
                out[name] = ParamEntry(name, "str", None, None,
                                       [Chunk(rel[r], None) for r in holders])
                continue
            dtype = cast(T.Type, rs.files[holders[0]].info(name).dtype)
            chunks = [Chunk(rel[r], cast(Box, plan.src.box(r))) for r in holders]
            lay = None if plan.how == "replicated" else plan.src
            out[name] = ParamEntry(name, dtype.name, plan.full_shape, lay, chunks)
    finally:
        for f in rs.files.values():
            f.close()
    return out


def open_source(checkpoint: Any, *, storage_options: dict[str, Any] | None = None,
                dec_key: bytes | None = None, dec_mode: str = "AES-GCM",
                require_commit: bool = True, strategy: Any = None) -> _Source:
    """Open a directory checkpoint (through its index) or a single checkpoint file.

    ``strategy`` (a strategy file): read a MindSpore-written directory instead (``rank_<r>/``
    files and no index or commit marker; local paths only).
    """
    store, key = _resolve(checkpoint, storage_options)
    if strategy is not None:
        if not store.isdir(key):
            raise NotADirectoryError(f"{store.describe(key)} is not a directory; strategy= is "
                                     "for MindSpore-written rank_<r>/ directories.")
        return _Source(store, key, _mindspore_params(key, strategy), key, dec_key=dec_key,
                       dec_mode=dec_mode, fmt=None)
    if store.isdir(key):
        ikey = store.join(key, INDEX_NAME)
        if require_commit and not is_committed(store, key):
            raise CheckpointNotFoundError(
                f"{store.describe(key)} is not a committed checkpoint: its commit marker is "
                "missing, so its save did not finish on every rank (or it is not a mindckpt "
                "distributed checkpoint). Load an earlier checkpoint.")
        if not store.exists(ikey):
            raise CheckpointNotFoundError(
                f"{store.describe(key)} has no {INDEX_NAME}; it is not a mindckpt distributed "
                "checkpoint. For MindSpore-written rank directories, merge them first with "
                "mindckpt.parallel.transform.transform_checkpoints.")
        ix: DistIndex = decode_index(store.read_bytes(ikey), store.describe(ikey))
        return _Source(store, key, ix.params, key, dec_key=dec_key, dec_mode=dec_mode,
                       fmt=ix.format)
    if not store.exists(key):
        raise CheckpointNotFoundError(f"The checkpoint {store.describe(key)} does not exist; "
                                      "check the path.")
    src = _Source(store, key, {}, "", dec_key=dec_key, dec_mode=dec_mode, fmt=None)
    index = src.reader(key).index
    for e in index:
        if e.kind == "tensor":
            t = cast(T.Type, e.dtype)
            src.params[e.name] = ParamEntry(e.name, t.name, tuple(e.shape), None,
                                            [Chunk(key, full_box(e.shape))])
        elif e.kind == "str":
            src.params[e.name] = ParamEntry(e.name, "str", None, None, [Chunk(key, None)])
    return src


# --------------------------------------------------------------------------- planning


def plan_reads(entry: ParamEntry, want: Box, rank: int) -> list[tuple[Chunk, Box]]:
    """``(chunk, overlap)`` covering ``want`` exactly: one replica of each distinct saved box,
    rotated by ``rank`` so replicas share the reading."""
    by_box: dict[Box, list[Chunk]] = {}
    for c in entry.chunks:
        if c.box is not None:
            by_box.setdefault(c.box, []).append(c)
    out = []
    covered = 0
    for box in sorted(by_box):
        ov = intersect(box, want) if want else (() if box == () else None)
        if ov is None:
            continue
        reps = by_box[box]
        out.append((reps[rank % len(reps)], ov))
        covered += math.prod(box_shape(ov))
    need = math.prod(box_shape(want))
    if covered != need:
        raise FormatError(
            f"Parameter '{entry.name}': the saved slices cover {covered} of the {need} elements "
            f"of the region {[list(b) for b in want]} this rank needs; the checkpoint is "
            "incomplete or its index does not match its files.")
    return out


def _read_into(reader: CheckpointReader, name: str, region: Box, out: np.ndarray) -> int:
    """Read ``region`` (file coordinates) of ``name`` into ``out``; straight into its memory
    when ``out`` is contiguous and of the stored dtype.  Returns the payload bytes read."""
    e = reader.index[name]
    dtype = cast(T.Type, e.dtype)
    if out.flags.c_contiguous and out.dtype == dtype.np_dtype and out.flags.writeable and \
            tuple(out.shape) == tuple(b - a for a, b in region):
        return int(reader.read_region(name, region, out=out).nbytes)
    arr = reader.read_region(name, region)
    out[...] = arr.astype(out.dtype, copy=False) if arr.dtype != out.dtype else arr
    return int(arr.nbytes)


def _fill_shard(src: _Source, entry: ParamEntry, want: Box, out: np.ndarray, rank: int) -> None:
    for chunk, ov in plan_reads(entry, want, rank):
        r = src.reader(chunk.file)
        if entry.name not in r.index:
            raise FormatError(f"{r.name} has no entry '{entry.name}', but the checkpoint index "
                              "says it holds a slice of it; the directory is damaged.")
        region = tuple((s.start, s.stop) for s in relative(ov, cast(Box, chunk.box)))
        dst = out[relative(ov, want)] if want else out
        src.payload += _read_into(r, entry.name, region, dst)


# --------------------------------------------------------------------------- targets


def _targets(target: Any, layouts: Mapping[str, Any] | None,
             ) -> tuple[dict[str, Any], dict[str, TensorLayout]]:
    if is_torch_module(target):
        values = dict(target.state_dict(keep_vars=True))
    elif isinstance(target, Mapping):
        values = dict(target)
    else:
        raise TypeError("For 'load_param_into_net', the target must be a torch module or a "
                        f"dict of tensors, but got {type(target)}.")
    return localize(values, layouts)


def _check_entry(entry: ParamEntry, name: str, full: tuple[int, ...], t: T.Type,
                 strict: bool) -> None:
    if entry.dtype == "str":
        raise TypeError(f"'{name}' is a str entry in the checkpoint; it cannot be loaded into "
                        "a tensor.")
    if entry.full_shape != full:
        raise RuntimeError(
            f"For 'load_param_into_net', {name} in the argument 'net' should have the same "
            f"shape as {name} in the checkpoint. But got its full shape {full} in the "
            f"argument 'net' and shape {entry.full_shape} in the checkpoint.")
    if entry.dtype != t.name:
        same = {entry.dtype, t.name} <= {"Float16", "Float32", "Float64", "BFloat16"} or \
            {entry.dtype, t.name} <= {"Int8", "Int16", "Int32", "Int64"}
        if strict or not same:
            raise RuntimeError(
                f"For 'load_param_into_net', {name} in the argument 'net' should have the same "
                f"type as {name} in the checkpoint. but got its type {t} in the argument 'net' "
                f"and type {entry.dtype} in the checkpoint.")
        logger.warning("The type of %s:%s in the checkpoint is different from the type of it "
                       "in 'net':%s, then the type convert from %s to %s in the network.",
                       name, entry.dtype, t, entry.dtype, t)


def _host_view(local: Any) -> tuple[np.ndarray, bool]:
    """A writable host array for ``local`` and whether it *is* ``local``'s memory."""
    if is_torch_tensor(local):
        if local.device.type == "cpu" and local.is_contiguous():
            return torch_to_numpy(local.detach()), True
        t = T.dtype_of_torch(local.dtype)
        if t is None:
            raise TypeError(f"mindckpt cannot load into a torch tensor of dtype {local.dtype}")
        return np.empty(tuple(local.shape), dtype=t.np_dtype), False
    if isinstance(local, np.ndarray):
        if local.flags.writeable:
            return local, True
        return np.empty_like(local), False
    if isinstance(local, T.Tensor):
        return np.empty(local.shape, dtype=local.dtype.np_dtype), False
    raise TypeError(f"cannot load into a value of type {type(local).__name__}")


def _store_back(local: Any, arr: np.ndarray, same: bool) -> None:
    if same:
        return
    if is_torch_tensor(local):
        copy_into(local, arr)
    elif isinstance(local, np.ndarray):
        local[...] = arr
    elif isinstance(local, T.Parameter):
        local.set_data(T.Tensor(arr, dtype=local.dtype))
    else:
        cast(Any, local)._array = arr


def _type_of(local: Any) -> T.Type:
    if is_torch_tensor(local):
        t = T.dtype_of_torch(local.dtype)
    elif isinstance(local, T.Tensor):
        t = local.dtype
    else:
        t = T.dtype_of_numpy(np.asarray(local).dtype)
    if t is None:
        raise TypeError(f"unsupported target dtype {getattr(local, 'dtype', '?')}")
    return t


def load_distributed(
    checkpoint: Any,
    target: Any,
    *,
    layouts: Mapping[str, Any] | None = None,
    strict_load: bool = False,
    choice_func: Callable[[str], Any] | None = None,
    group: Any = None,
    rank: int | None = None,
    dec_key: bytes | None = None,
    dec_mode: str = "AES-GCM",
    storage_options: dict[str, Any] | None = None,
    strategy: Any = None,
) -> DistLoadResult:
    """Load ``checkpoint`` into ``target``'s local shards on this rank (see the module doc).

    Every shape and dtype is checked before any shard changes.  ``rank`` defaults to this
    process's rank in ``group`` (the world); nothing here is collective.
    """
    if rank is None:
        rank = rank_of(group)
    locals_, lays = _targets(target, layouts)
    src = open_source(checkpoint, storage_options=storage_options, dec_key=dec_key,
                      dec_mode=dec_mode, strategy=strategy)
    res = DistLoadResult()
    try:
        jobs = []
        for name, local in locals_.items():
            if choice_func is not None and not choice_func(name):
                continue
            entry = src.params.get(name)
            if entry is None:
                res.param_not_load.append(name)
                continue
            lay = lays.get(name)
            full = lay.full_shape if lay is not None else tuple(getattr(local, "shape", ()))
            want = lay.box(rank) if lay is not None else full_box(full)
            if want is None:
                continue  # another pipeline stage's parameter
            t = _type_of(local)
            _check_entry(entry, name, tuple(full), t, strict_load)
            if tuple(box_shape(want)) != tuple(getattr(local, "shape", ())):
                raise RuntimeError(f"'{name}': the local shard has shape "
                                   f"{tuple(local.shape)} but its layout gives rank {rank} a "
                                   f"slice of shape {box_shape(want)}.")
            jobs.append((name, local, entry, want))
        for _name, local, entry, want in jobs:
            arr, same = _host_view(local)
            _fill_shard(src, entry, want, arr, rank)
            _store_back(local, arr, same)
            res.shard_bytes += int(arr.nbytes)
        used = {j[0] for j in jobs}
        res.ckpt_not_load = [n for n in src.params if n not in used]
    finally:
        res.bytes_read = src.counter[0]
        res.payload_bytes = src.payload
        src.close()
    return res


def read_shards(checkpoint: Any, layouts: Mapping[str, TensorLayout], rank: int = 0, *,
                names: Sequence[str] | None = None, dec_key: bytes | None = None,
                dec_mode: str = "AES-GCM", storage_options: dict[str, Any] | None = None,
                strategy: Any = None) -> dict[str, np.ndarray]:
    """``{name: rank's slice}`` for ``layouts`` (names without a layout: the whole tensor)."""
    src = open_source(checkpoint, storage_options=storage_options, dec_key=dec_key,
                      dec_mode=dec_mode, strategy=strategy)
    out: dict[str, np.ndarray] = {}
    try:
        for name in (names if names is not None else list(src.params)):
            entry = src.params.get(name)
            if entry is None:
                raise KeyError(f"{src.store.describe(src.key)} has no parameter '{name}'.")
            if entry.dtype == "str":
                continue
            lay = layouts.get(name)
            full = cast(tuple, entry.full_shape)
            want = lay.box(rank) if lay is not None else full_box(full)
            if want is None:
                continue
            if lay is not None and lay.full_shape != full:
                raise RuntimeError(f"'{name}': the layout is for shape {lay.full_shape}, the "
                                   f"checkpoint holds shape {full}.")
            arr = np.empty(box_shape(want), dtype=cast(T.Type, entry.type).np_dtype)
            _fill_shard(src, entry, want, arr, rank)
            out[name] = arr
    finally:
        src.close()
    return out


def assign_shards(target: Any, parameter_dict: Mapping[str, Any], *,
                  layouts: Mapping[str, Any] | None = None, strict_load: bool = False,
                  rank: int | None = None) -> tuple[list[str], list[str]]:
    """``load_param_into_net`` for a net of DTensors (or local tensors with ``layouts``):
    each local shard takes its box of the *full* value in ``parameter_dict`` (what
    ``load_checkpoint`` returned).  Every shape and dtype is checked before any shard changes;
    returns ``(param_not_load, ckpt_not_load)``.  Not collective."""
    rank = rank_of(None) if rank is None else rank
    locals_, lays = _targets(target, layouts)
    plan = []
    not_loaded = []
    for name, local in locals_.items():
        value = parameter_dict.get(name)
        if value is None or isinstance(value, (str, list)):
            not_loaded.append(name)
            continue
        arr = T.to_numpy(value)
        lay = lays.get(name)
        full = lay.full_shape if lay is not None else tuple(local.shape)
        t, src_t = _type_of(local), T.dtype_of_numpy(arr.dtype)
        entry = ParamEntry(name, src_t.name if src_t else "?", tuple(arr.shape), None)
        _check_entry(entry, name, tuple(full), t, strict_load)
        want = lay.box(rank) if lay is not None else full_box(full)
        if want is None:
            continue
        plan.append((local, arr[tuple(slice(a, b) for a, b in want)] if want else arr, t))
    for local, part, t in plan:
        host, same = _host_view(local)
        host[...] = part.astype(t.np_dtype, copy=False)
        _store_back(local, host, same)
    used = set(locals_)
    return not_loaded, [n for n in parameter_dict if n not in used]


# --------------------------------------------------------------------------- dedup restore


def restore_redundancy(target: Any, parameter_dict: Mapping[str, Any], *,
                       layouts: Mapping[str, Any] | None = None, strict_load: bool = False,
                       group: Any = None) -> tuple[list[str], list[str]]:
    """MindSpore's ``load_param_into_net(net, own_file_dict, remove_redundancy=True)``.

    Collective: every rank calls it with the dict it loaded from its own file.  A parameter
    with a layout is restored within each replica set from the member whose file holds it;
    one without a layout (MindSpore's data-parallel case) from any rank holding it.
    """
    from ..async_writer import default_writer

    default_writer().wait()  # an async save owns the checkpoint group until it ends
    comm: Comm = checkpoint_comm(group)
    rank = comm.rank
    locals_, lays = _targets(target, layouts)
    have = [n for n in locals_ if n in parameter_dict
            and not isinstance(parameter_dict[n], (str, list))]
    reports = comm.exchange(list(locals_))
    if any(r != reports[0] for r in reports):
        raise ValueError("restore_redundancy: the ranks' networks have different parameters; "
                         "every rank must load into the same network.")
    holders_all = comm.exchange(have)
    holds = [set(h) for h in holders_all]
    not_loaded: list[str] = []
    for name in reports[0]:
        local = locals_[name]
        lay = lays.get(name)
        if lay is not None:
            groups = [members for _b, members in lay.distinct_boxes()]
        else:
            groups = [tuple(range(comm.world_size))]
        mine_group = next((g for g in groups if rank in g), None)
        arr, same = _host_view(local)
        t = _type_of(local)
        sends: list[tuple[np.ndarray, int]] = []
        recvs: list[tuple[np.ndarray, int]] = []
        got = False
        for members in groups:
            owner = next((m for m in members if name in holds[m]), None)
            if owner is None:
                if members is mine_group:
                    not_loaded.append(name)
                continue
            if rank == owner:
                value = T.to_numpy(parameter_dict[name])
                if tuple(value.shape) != tuple(arr.shape):
                    raise RuntimeError(f"For 'load_param_into_net', {name} has shape "
                                       f"{tuple(value.shape)} in the file of rank {rank}, but "
                                       f"the net's local shard has shape {tuple(arr.shape)}.")
                if value.dtype != arr.dtype:
                    if strict_load:
                        raise RuntimeError(f"For 'load_param_into_net', {name} has type "
                                           f"{value.dtype} in the file, {t} in the net.")
                    value = value.astype(arr.dtype)
                arr[...] = value
                got = True
                for m in members:
                    if m != rank:
                        sends.append((arr, m))
            elif rank in members:
                recvs.append((arr, owner))
                got = True
        comm.send_recv(sends, recvs)
        if got:
            _store_back(local, arr, same)
    ckpt_not_load = [n for n in parameter_dict if n not in locals_]
    return sorted(set(not_loaded), key=reports[0].index), ckpt_not_load
