"""Saving sliced parameters from a torch.distributed job, with MindSpore's modes and files.

Entry point: :func:`save_distributed` (what ``save_checkpoint`` routes to when ``save_obj``
holds DTensors or ``layouts=`` are given).  Every rank calls it with the same arguments (its
own ``ckpt_file_name`` in the integrated mode, as in MindSpore).  The modes:

``integrated_save=True`` (the default, MindSpore's)
    Sliced parameters are gathered to full tensors, **one parameter at a time** (the peak is
    one full parameter, never the model), and written as one ordinary checkpoint, byte for
    byte what an unsliced ``save_checkpoint`` of the same values writes (``.ckpt`` or
    safetensors, CRC and encryption included).  ``writer_rank=None``: every rank writes its
    own ``ckpt_file_name`` (MindSpore's behaviour; each distinct slice is broadcast once from
    one holder).  ``writer_rank=k``: only rank ``k`` writes (the "rank 0 writes" PyTorch users
    expect); only the slices rank ``k`` lacks travel, point to point, to it.
``integrated_save=False``
    A directory checkpoint ``D``: each rank writes its local slices to ``D/rank_<r>/<name>``
    (MindSpore's layout, an ordinary checkpoint file per rank), rank 0 writes
    ``D/strategy.ckpt`` (MindSpore's ``ParallelStrategyMap``, so ``transform_checkpoints``
    merges the directory), then the index and the commit marker.
``remove_redundancy=True`` (implies ``integrated_save=False``, as in MindSpore)
    Each set of ranks holding identical data writes it once.  The owner of each slice is chosen
    by bytes (largest first, to the least-loaded holder, ties to the lowest rank) where
    MindSpore rotates by parameter count; tensors without a layout are in every file, and
    safetensors files carry MindSpore's ``remove_redundancy`` flag.

Where the directory checkpoint goes: with ``ckpt_file_name`` ``.../D/rank_<r>/<file>`` (``r``
this rank) the directory is ``D``; otherwise ``ckpt_file_name`` (its suffix dropped) *is* the
directory and each rank writes ``rank_<r>/<basename>.<format>`` inside.  One checkpoint per
directory: saving into a committed directory is refused, so a failed save can never damage a
committed checkpoint.

Commit: parts (each written atomically), a barrier where every rank reports success or its
error, then rank 0 writes the strategy file, the index and, last, create-only, the commit
marker.  A failure on any rank raises :class:`~mindckpt.parallel._dist.DistributedCheckpointError`
on every rank naming the failing rank(s) and the cause, and leaves no commit marker.  In the
integrated mode each writer's file is published only after every rank reported success.

``async_save=True``: each rank snapshots its local slices (one host copy, the only
foreground cost besides a metadata exchange), then a background thread gathers, writes and
commits over the checkpoint group; errors are raised at the next save or at ``wait``
(:func:`mindckpt.async_writer.wait`), on every rank.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from .. import tensor as T
from ..adapters.torch import is_torch_module
from ..async_writer import AsyncWriter, default_writer
from ..collect import collect, validate_append_dict
from ..formats import ckpt as _ckpt
from ..formats import safetensors as _st
from ..formats.ckpt import content_view
from ..formats.records import Record
from ..nn import Cell
from ..pipeline import FORMATS, write_file
from ..storage.base import Store, Transaction, is_committed
from ._dist import Comm, DistributedCheckpointError, checkpoint_comm
from ._index import Chunk, DistIndex, ParamEntry, encode_index, layout_from_json, layout_to_json
from .dtensor import localize
from .layout import Box, LayoutError, TensorLayout, box_shape, full_box, relative
from .strategy import write_strategy

__all__ = [
    "STRATEGY_NAME",
    "DistSaveResult",
    "save_distributed",
    "checkpoint_directory",
    "assign_owners",
    "has_dtensors",
    "exchange_objects",
]

STRATEGY_NAME = "strategy.ckpt"
_RANK_DIR = re.compile(r"^rank_(\d+)$")

#: The checkpoint group runs one save at a time: held by a foreground save, or handed to an
#: async save's thread (which releases it when it ends), so that a later save's collectives
#: (whichever writer it goes through) never interleave with the ones in flight.
_group_lock = threading.Lock()


def exchange_objects(obj: Any, group: Any = None) -> list[Any]:
    """Every rank's JSON-able ``obj``, in rank order, over the checkpoint group (``[obj]``
    outside a process group); collective, and it waits for an async save in flight first."""
    with _group_lock:
        return checkpoint_comm(group).exchange(obj)


@dataclass
class DistSaveResult:
    """What a distributed save did on this rank."""

    mode: str  # "integrated" | "sliced" | "dedup"
    path: str  # the file (integrated) or the checkpoint directory
    files: list[str] = field(default_factory=list)  # what this rank wrote
    bytes_written: int = 0
    committed: bool = False


# --------------------------------------------------------------------------- inputs


def has_dtensors(save_obj: Any) -> bool:
    """Whether ``save_obj`` (a torch module or a dict) holds DTensors (routing test)."""
    import sys

    from .dtensor import is_dtensor

    if "torch.distributed.tensor" not in sys.modules:
        return False  # no DTensor can exist yet
    if is_torch_module(save_obj):
        return any(is_dtensor(v) for v in save_obj.state_dict().values())
    if isinstance(save_obj, dict):
        return any(is_dtensor(v) for v in save_obj.values())
    return False


def _local_records(save_obj: Any, layouts: Mapping[str, Any] | None,
                   choice_func: Callable[[str], Any] | None,
                   append_dict: dict[str, Any] | None) -> tuple[list[Record],
                                                                dict[str, TensorLayout]]:
    if is_torch_module(save_obj):
        values, lays = localize(save_obj.state_dict(), layouts)
        records = collect(values, choice_func, append_dict)
    elif isinstance(save_obj, dict):
        values, lays = localize(save_obj, layouts)
        records = collect(values, choice_func, append_dict)
    elif isinstance(save_obj, (Cell, list)):
        records = collect(save_obj, choice_func, append_dict)
        _v, lays = localize({r.name: r.value for r in records}, layouts)
    else:
        raise TypeError("For 'save_checkpoint', the parameter 'save_obj' must be nn.Cell, list "
                        f"or dict, but got {type(save_obj)}.")
    names = {r.name for r in records}
    unknown = sorted(set(layouts or ()) - names - set(_filtered(layouts, choice_func)))
    if unknown:
        raise ValueError(f"For 'save_checkpoint', layouts were given for {unknown[:5]}, which "
                         "are not in 'save_obj'; check the names.")
    return records, {n: lay for n, lay in lays.items() if n in names}


def _filtered(layouts: Mapping[str, Any] | None, choice_func: Callable[[str], Any] | None,
              ) -> list[str]:
    if not layouts or choice_func is None:
        return []
    return [n for n in layouts if not choice_func(n)]


# --------------------------------------------------------------------------- the global plan


@dataclass
class _Item:
    """One entry of the global plan (the same on every rank)."""

    name: str
    dtype: str  # MindSpore type name or "str"
    override: str | None  # Record dtype override (qint4x2)
    full_shape: tuple[int, ...] | None
    layout: TensorLayout | None
    holders: tuple[int, ...]  # ranks that hold the entry

    @property
    def type(self) -> T.Type:
        return cast(T.Type, T.dtype_of_name(self.dtype))

    @property
    def nbytes(self) -> int:
        return 0 if self.full_shape is None else math.prod(self.full_shape) * self.type.itemsize

    def distinct(self) -> list[tuple[Box, tuple[int, ...]]]:
        """``(box, holders)`` of each distinct slice (a layout-less tensor: the whole, on
        every holder)."""
        if self.layout is not None:
            return self.layout.distinct_boxes()
        return [(full_box(self.full_shape or ()), self.holders)]


def _describe(rec: Record, lay: TensorLayout | None, rank: int) -> dict[str, Any]:
    if isinstance(rec.value, str):
        return {"name": rec.name, "dtype": "str", "override": None, "shape": None,
                "full_shape": None, "layout": None}
    shape, t, _n = T.meta(rec.value)
    if t is None:
        raise TypeError(f"Cannot save '{rec.name}': dtype {rec.value.dtype} has no MindSpore "
                        "checkpoint type.")
    if lay is not None:
        box = lay.box(rank)
        if box is None:
            raise LayoutError(f"Parameter '{rec.name}' is on rank {rank}, but its layout puts "
                              f"it in pipeline stage(s) {list(lay.stages)} only.")
        if box_shape(box) != tuple(shape):
            raise LayoutError(
                f"Parameter '{rec.name}' has local shape {list(shape)} on rank {rank}, but its "
                f"layout gives rank {rank} a slice of shape {list(box_shape(box))} (full shape "
                f"{list(lay.full_shape)}); check the layout.")
    return {"name": rec.name, "dtype": t.name,
            "override": rec.dtype.name if rec.dtype is not None else None,
            "shape": list(shape), "full_shape": list(lay.full_shape if lay else shape),
            "layout": None if lay is None else layout_to_json(lay)}


def _global_plan(reports: Sequence[list[dict[str, Any]]]) -> list[_Item]:
    """Merge every rank's description into one ordered plan, checking they agree."""
    order: dict[str, dict[str, Any]] = {}
    holders: dict[str, list[int]] = {}
    for rank, descs in enumerate(reports):
        for d in descs:
            first = order.setdefault(d["name"], d)
            holders.setdefault(d["name"], []).append(rank)
            for key in ("dtype", "full_shape", "layout", "override"):
                if first[key] != d[key]:
                    r0 = holders[d["name"]][0]
                    raise ValueError(
                        f"Parameter '{d['name']}' differs between ranks: {key} is "
                        f"{first[key]} on rank {r0} but {d[key]} on rank {rank}. Every rank "
                        "must save the same parameters with the same layouts.")
    out = []
    for name, d in order.items():
        full = None if d["full_shape"] is None else tuple(d["full_shape"])
        lay = None if d["layout"] is None else layout_from_json(d["layout"], cast(Any, full),
                                                                name)
        out.append(_Item(name, d["dtype"], d["override"], full, lay, tuple(holders[name])))
    return out


# --------------------------------------------------------------------------- owners


def assign_owners(items: Sequence[Any], world_size: int) -> dict[tuple[str, Box], int]:
    """``{(name, box): owner rank}`` for every distinct slice of the layout-carrying items.

    Deterministic and byte-balanced: slices are taken largest first (then by name and box),
    each to the holder with the fewest bytes so far, ties to the lowest rank.
    """
    slices = []
    for it in items:
        if it.layout is None:
            continue
        for box, members in it.layout.distinct_boxes():
            nbytes = math.prod(box_shape(box)) * it.type.itemsize
            slices.append((nbytes, it.name, box, members))
    slices.sort(key=lambda s: (-s[0], s[1], s[2]))
    load = [0] * world_size
    out: dict[tuple[str, Box], int] = {}
    for nbytes, name, box, members in slices:
        owner = min(members, key=lambda m: (load[m], m))
        load[owner] += nbytes
        out[(name, box)] = owner
    return out


# --------------------------------------------------------------------------- targets


def _resolve(target: Any, storage_options: dict[str, Any] | None) -> tuple[Store, str]:
    from ..storage.urls import resolve

    return resolve(target, storage_options)


def _strip_fmt(path: str) -> str:
    for fmt in FORMATS:
        if path.endswith("." + fmt):
            return path[: -len(fmt) - 1]
    return path


def checkpoint_directory(ckpt_file_name: str, rank: int, fmt: str) -> tuple[str, str]:
    """``(directory, this rank's file relative to it)`` of a sliced save (see the module doc)."""
    path = _strip_fmt(str(ckpt_file_name)).replace(os.sep, "/")
    parts = path.split("/")
    for i in range(len(parts) - 2, -1, -1):
        m = _RANK_DIR.match(parts[i])
        if m:
            if int(m.group(1)) != rank:
                raise ValueError(
                    f"For 'save_checkpoint', rank {rank} was given the path {ckpt_file_name}, "
                    f"which is inside the directory of rank {m.group(1)}; give each rank its own "
                    f"rank_<r> directory (or a path without rank_<r>: the checkpoint directory).")
            directory = "/".join(parts[:i]) or "."
            return directory, "/".join(["rank_{r}", *parts[i + 1:]]) + f".{fmt}"
    name = parts[-1] or "checkpoint"
    return path, f"rank_{{r}}/{name}.{fmt}"


class _GuardedSink:
    """Keeps taking bytes after a write failed (dropping them), so that a rank whose disk
    fails still runs every collective of the save; the first error is kept."""

    def __init__(self, sink: Any):
        self.sink = sink
        self.error: BaseException | None = None
        self.bytes = 0

    def write(self, data: Any) -> None:
        if self.error is not None:
            return
        try:
            self.sink.write(data)
            self.bytes += memoryview(data).nbytes
        except BaseException as e:  # noqa: BLE001 - reported through Comm.agree
            self.error = e


# --------------------------------------------------------------------------- gathering


def _host(value: Any) -> np.ndarray:
    arr = T.to_numpy(value)
    return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)


class _Gatherer:
    """Full tensors from slices, one parameter at a time (see :func:`save_distributed`)."""

    def __init__(self, comm: Comm, local: Mapping[str, Any], writer: int | None):
        self.comm = comm
        self.local = local
        self.writer = writer  # None: every rank gets the full tensor
        self.received = 0

    def gather(self, it: _Item) -> np.ndarray | str | None:
        rank = self.comm.rank
        wants = self.writer is None or rank == self.writer
        if it.dtype == "str":
            value = self.local.get(it.name)
            if value is None and wants:
                raise ValueError(f"'{it.name}' (a str entry) is not on rank {rank}; str entries "
                                 "must be given on the writing rank")
            return value if wants else None
        if it.full_shape is None:
            raise ValueError(f"internal: tensor '{it.name}' without a shape")
        dt = it.type.np_dtype
        distinct = it.distinct()
        mine = self.local.get(it.name)
        if len(distinct) == 1:
            members = distinct[0][1]
            if self.writer is None and len(members) == self.comm.world_size:
                return _host(mine)  # every rank holds the whole tensor
            if self.writer is not None and self.writer in members:
                return _host(mine) if rank == self.writer else None
        out = np.empty(it.full_shape, dtype=dt) if wants else None
        sends: list[tuple[np.ndarray, int]] = []
        recvs: list[tuple[np.ndarray, np.ndarray | None, Box]] = []
        for j, (box, members) in enumerate(distinct):
            if self.writer is not None and self.writer in members:
                if rank == self.writer:
                    cast(np.ndarray, out)[relative(box, full_box(it.full_shape))] = _host(mine)
                continue
            src = members[j % len(members)]  # spread the sending over the replicas
            region = relative(box, full_box(it.full_shape))
            if self.writer is None:
                view = cast(np.ndarray, out)[region]
                buf = view if view.flags.c_contiguous else np.empty(box_shape(box), dtype=dt)
                if rank == src:
                    buf[...] = _host(mine)
                self.comm.broadcast_bytes(buf, src)
                if buf is not view:
                    view[...] = buf
                if rank != src:
                    self.received += buf.nbytes
                continue
            if rank == src:
                sends.append((_host(mine), self.writer))
            elif rank == self.writer:
                view = cast(np.ndarray, out)[region]
                if view.flags.c_contiguous:
                    recvs.append((view, None, box))
                else:
                    recvs.append((np.empty(box_shape(box), dtype=dt), view, box))
        if self.writer is not None:
            self.comm.send_recv(sends, [(buf, _src_of(distinct, box, self.writer))
                                        for buf, _v, box in recvs])
            for buf, back, _box in recvs:
                self.received += buf.nbytes
                if back is not None:
                    back[...] = buf
        return out


def _src_of(distinct: Sequence[tuple[Box, tuple[int, ...]]], box: Box, writer: int) -> int:
    for j, (b, members) in enumerate(distinct):
        if b == box:
            return members[j % len(members)]
    raise ValueError("internal: unknown box")


# --------------------------------------------------------------------------- integrated


@dataclass
class _Options:
    fmt: str
    crc_check: bool
    enc_key: bytes | None
    enc_mode: str
    remove_redundancy: bool
    durable: bool | None


def _st_entries(items: Sequence[_Item]) -> list[tuple[_Item, str, int]]:
    """``(item, safetensors dtype code, nbytes)`` in the safetensors library's write order
    (what ``write_safetensors`` computes from the values, here from the plan alone)."""
    out = []
    for it in items:
        t = T.dtype_of_name(it.override) if it.override else it.type
        if t is None or t.st_code is None:
            raise TypeError(f"Cannot save '{it.name}' as safetensors: dtype {it.dtype} has no "
                            "safetensors code")
        out.append((it, str(t.st_code), it.nbytes))
    out.sort(key=lambda e: _st.write_order(e[1], e[0].name))
    return out


def _st_header(entries: Sequence[tuple[_Item, str, int]], remove_redundancy: bool | None,
               crc_num: int | None) -> bytes:
    """The exact safetensors header ``write_safetensors`` writes for these entries (from
    :func:`_st_entries`), with MindSpore's metadata and, given ``crc_num``, its ``crc_num`` and
    mindckpt's header checksum; no data is touched."""
    meta: dict[str, str] | None = None
    if entries:
        meta = _st.ms_metadata(
            [it.name for it, _code, _n in entries
             if it.override is not None and T.dtype_of_name(it.override) is T.qint4x2],
            remove_redundancy, crc_num)
    head, _offsets = _st.encode_header(
        [(it.name, code, cast(tuple, it.full_shape), n) for it, code, n in entries], meta,
        header_checksum=crc_num is not None and bool(entries))
    return head


class _Lazy:
    """A value gathered when it is converted (``numpy.asarray``), on a rank that writes."""

    __slots__ = ("item", "gatherer")

    def __init__(self, item: _Item, gatherer: _Gatherer):
        self.item = item
        self.gatherer = gatherer

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = cast(np.ndarray, self.gatherer.gather(self.item))
        return arr if dtype is None else arr.astype(dtype, copy=False)


def _save_integrated(plan: list[_Item], local: Mapping[str, Any], comm: Comm, store: Store,
                     key: str, writer: int | None, opt: _Options) -> DistSaveResult:
    rank = comm.rank
    g = _Gatherer(comm, local, writer)
    writes = writer is None or rank == writer
    error: BaseException | None = None
    result = DistSaveResult("integrated", store.describe(key) if writes else "")
    if opt.fmt == "safetensors":
        strs = [it.name for it in plan if it.dtype == "str"]
        if strs:
            raise TypeError(f"Cannot save '{strs[0]}' as safetensors: str values are not "
                            "supported by the safetensors format; save with format='ckpt'.")
        rr = True if opt.remove_redundancy else None
        entries = _st_entries(plan)
    w: Any = None
    if writes:
        try:
            store.makedirs(store.parent(key))
            w = store.open_write(key, durable=opt.durable)
            w.__enter__()
        except BaseException as e:  # noqa: BLE001 - reported to every rank below
            error, w = e, None
    sink = _GuardedSink(w) if w is not None else None
    try:
        if opt.fmt == "safetensors":
            crc_num = None
            if opt.crc_check:
                # pass 1: crc_num covers every value and comes before the data, so each value
                # is gathered once, folded into MindSpore's crc (formats.safetensors.ms_crc:
                # sorted names, one value converted at a time) and dropped
                if writes:
                    crc_num = _st.ms_crc((it.name, cast(Any, _Lazy(it, g)))
                                            for it, _c, _n in entries)
                else:  # the same gathers, in the same (sorted-name) order, nothing to fold
                    for it in sorted(plan, key=lambda i: i.name):
                        g.gather(it)
            if sink is not None:
                sink.write(_st_header(entries, rr, crc_num))
            for it, _code, _n in entries:  # pass 2: gathered again, written in write order
                arr = g.gather(it)
                if sink is not None and isinstance(arr, np.ndarray) and arr.nbytes:
                    sink.write(content_view(arr))
                del arr  # one full parameter alive at a time
        else:
            def records() -> Any:
                for it in plan:
                    value = g.gather(it)
                    if value is not None:
                        over = T.dtype_of_name(it.override) if it.override else None
                        yield Record(it.name, value, over)
                    del value  # not kept alive by this frame during the next gather
            if sink is None:
                for _r in records():
                    pass
            elif opt.enc_key is not None:
                from ..codecs import crypto

                esink = crypto.EncryptSink(sink, opt.enc_key, opt.enc_mode)
                _ckpt.write_ckpt(esink, records(), split="bytes")
                esink.close()
            else:
                _ckpt.write_ckpt(sink, records(), crc=opt.crc_check, split="bytes")
        if sink is not None and sink.error is not None:
            error = sink.error
    except BaseException as e:  # noqa: BLE001
        error = error or e
    try:
        comm.agree(error, f"Integrated save of {result.path}")
    except BaseException:
        if w is not None:
            w.__exit__(DistributedCheckpointError, None, None)  # discard: nothing published
        raise
    published: BaseException | None = None
    if w is not None:
        try:
            w.__exit__(None, None, None)  # publish
            result.files.append(store.describe(key))
            result.bytes_written = sink.bytes if sink is not None else 0
        except BaseException as e:  # noqa: BLE001 - e.g. the rename or fsync failed
            published = e
    # every rank learns whether every file is in place (a caller's retention runs only then)
    reports = comm.exchange(None if published is None else
                            f"{type(published).__name__}: {published}")
    failures = {r: m for r, m in enumerate(reports) if m is not None}
    if failures:
        if published is not None and comm.world_size == 1:
            raise published
        who = "; ".join(f"rank {r}: {m}" for r, m in sorted(failures.items()))
        err = DistributedCheckpointError(
            f"Publishing the integrated checkpoint failed on {len(failures)} of "
            f"{comm.world_size} rank(s) ({who}) after every rank had written its data; the "
            "other writers' files are in place, the failing ranks' previous files (if any) "
            "are as they were.", failures)
        if published is not None:
            raise err from published
        raise err
    result.committed = True
    return result


# --------------------------------------------------------------------------- sliced / dedup


def _strategy_bytes(layouts: Mapping[str, TensorLayout]) -> bytes:
    # write_strategy writes local files only; go through a temporary file for any store
    with tempfile.TemporaryDirectory(prefix="mindckpt-strategy-") as tmp:
        path = os.path.join(tmp, STRATEGY_NAME)
        write_strategy(path, layouts)
        with open(path, "rb") as f:
            return f.read()


def _save_sliced(plan: list[_Item], records: list[Record], comm: Comm, store: Store,
                 directory: str, rel: str, opt: _Options) -> DistSaveResult:
    rank = comm.rank
    mode = "dedup" if opt.remove_redundancy else "sliced"
    result = DistSaveResult(mode, store.describe(directory))
    owners = assign_owners(plan, comm.world_size) if opt.remove_redundancy else {}
    by_name = {it.name: it for it in plan}
    error: BaseException | None = None
    report: Any = None
    try:
        keep = []
        for rec in records:
            it = by_name[rec.name]
            if it.layout is not None and owners:
                box = it.layout.box(rank)
                if owners.get((it.name, cast(Box, box))) != rank:
                    continue
            keep.append(rec)
        key = store.join(directory, rel.replace("{r}", str(rank)))
        store.makedirs(store.parent(key))
        res = write_file(store, key, keep, fmt=opt.fmt, crc_check=opt.crc_check,
                         enc_key=opt.enc_key, enc_mode=opt.enc_mode,
                         remove_redundancy=True if opt.remove_redundancy else None,
                         durable=opt.durable)
        result.files.append(res.target)
        result.bytes_written = res.bytes_written
        report = [r.name for r in keep]
    except BaseException as e:  # noqa: BLE001 - reported to every rank
        error = e
    reports = comm.exchange(["ok", report] if error is None else
                            ["error", f"{type(error).__name__}: {error}"])
    _raise_failures(reports, f"Sliced save of {result.path}", error)
    if rank == 0:
        try:
            params: dict[str, ParamEntry] = {}
            for it in plan:
                params[it.name] = ParamEntry(it.name, it.dtype, it.full_shape, it.layout)
            for r, (_s, names) in enumerate(reports):
                f = rel.replace("{r}", str(r))
                for n in names:
                    it = by_name[n]
                    if it.dtype == "str":
                        box = None
                    elif it.layout is not None:
                        box = it.layout.box(r)
                    else:
                        box = full_box(cast(tuple, it.full_shape))
                    params[n].chunks.append(Chunk(f, box))
            layouts = {it.name: it.layout for it in plan if it.layout is not None}
            index = DistIndex(comm.world_size, opt.fmt, False, opt.remove_redundancy, params,
                              STRATEGY_NAME if layouts else None)
            if layouts:
                store.write_bytes(store.join(directory, STRATEGY_NAME),
                                  _strategy_bytes(layouts), durable=opt.durable)
            Transaction(store, directory, durable=opt.durable).commit(encode_index(index))
        except BaseException as e:  # noqa: BLE001
            error = e
    comm.agree(error if rank == 0 else None, f"Commit of {result.path}")
    result.committed = True
    return result


def _raise_failures(reports: Sequence[Any], stage: str, mine: BaseException | None) -> None:
    failures = {r: rep[1] for r, rep in enumerate(reports) if rep[0] != "ok"}
    if not failures:
        return
    if mine is not None and len(reports) == 1:
        raise mine  # world size 1: the error as a plain save raises it
    who = "; ".join(f"rank {r}: {msg}" for r, msg in sorted(failures.items()))
    err = DistributedCheckpointError(
        f"{stage} failed on {len(failures)} of {len(reports)} rank(s) ({who}). Nothing was "
        "committed; a previous checkpoint, if any, is unchanged.", failures)
    if mine is not None:
        raise err from mine
    raise err


# --------------------------------------------------------------------------- entry point


def save_distributed(
    save_obj: Any,
    ckpt_file_name: Any,
    *,
    integrated_save: bool = True,
    remove_redundancy: bool = False,
    writer_rank: int | None = None,
    async_save: bool | str = False,
    format: str = "ckpt",  # noqa: A002 - MindSpore's keyword
    layouts: Mapping[str, Any] | None = None,
    append_dict: dict[str, Any] | None = None,
    choice_func: Callable[[str], Any] | None = None,
    crc_check: bool = False,
    enc_key: bytes | None = None,
    enc_mode: str = "AES-GCM",
    group: Any = None,
    storage_options: dict[str, Any] | None = None,
    durable: bool | None = None,
    writer: AsyncWriter | None = None,
) -> DistSaveResult | None:
    """Save a module or state_dict of DTensors (or local tensors with ``layouts``) from every
    rank of the process group; see the module doc for the modes, files and commit.

    ``writer_rank`` (integrated only): ``None`` every rank writes its own ``ckpt_file_name``
    (MindSpore); an int: only that rank writes.  Returns this rank's
    :class:`DistSaveResult`, or None for an async save (its errors come at the next save or
    at :func:`mindckpt.async_writer.wait`).  ``writer``: the
    :class:`~mindckpt.async_writer.AsyncWriter` of an async save (default: the process's
    :func:`~mindckpt.async_writer.default_writer`; a ``CheckpointManager`` passes its own); its
    previous save is finished (and its error raised) before this one starts, and a save in
    flight on any writer finishes before this one uses the group.  Outside a process group it
    runs as world size 1.
    """
    if format not in FORMATS:
        raise ValueError("For 'save_checkpoint', the format must be 'safetensors' or 'ckpt', "
                         f"but got {format}.")
    for arg, v in (("integrated_save", integrated_save), ("remove_redundancy", remove_redundancy),
                   ("crc_check", crc_check)):
        if not isinstance(v, bool):
            raise TypeError(f"For 'save_checkpoint', the argument '{arg}' must be bool, but got "
                            f"{type(v)}.")
    if async_save not in (False, True, "thread"):
        raise ValueError(
            f"For 'save_checkpoint', async_save={async_save!r} is not available for distributed "
            "saves: a forked writer process cannot take part in collectives; use "
            "async_save=True (a thread).")
    validate_append_dict(append_dict)
    if remove_redundancy:
        integrated_save = False  # MindSpore: remove_redundancy saves slices
    if writer_rank is not None and not integrated_save:
        raise ValueError("For 'save_checkpoint', writer_rank applies to integrated_save=True "
                         "only; a sliced save writes one file per rank.")
    if enc_key is not None and format == "safetensors":
        raise ValueError("For 'save_checkpoint', when format is 'safetensors', the parameter "
                         "'enc_key' must be set to default value 'None', but got 'bytes'.")
    if enc_key is not None and crc_check:
        raise ValueError("For 'save_checkpoint', 'crc_check=True' cannot be used together with "
                         "'enc_key'; AES-GCM already authenticates the data.")
    writer = writer if writer is not None else default_writer()
    writer.wait()  # its previous save's error is raised here, before this save starts
    _group_lock.acquire()  # an async save in flight (any writer) owns the group until it ends
    handed = False
    try:
        result = _save_locked(
            save_obj, ckpt_file_name, integrated_save, remove_redundancy, writer_rank,
            bool(async_save), format, layouts, append_dict, choice_func, crc_check, enc_key,
            enc_mode, group, storage_options, durable, writer)
        handed = result is None  # the async save's thread releases the lock
        return result
    finally:
        if not handed:
            _group_lock.release()


def _save_locked(save_obj: Any, ckpt_file_name: Any, integrated_save: bool,
                 remove_redundancy: bool, writer_rank: int | None, async_save: bool,
                 format: str, layouts: Mapping[str, Any] | None,  # noqa: A002
                 append_dict: dict[str, Any] | None, choice_func: Callable[[str], Any] | None,
                 crc_check: bool, enc_key: bytes | None, enc_mode: str, group: Any,
                 storage_options: dict[str, Any] | None, durable: bool | None,
                 writer: AsyncWriter) -> DistSaveResult | None:
    """:func:`save_distributed` once it holds the checkpoint group."""
    comm = checkpoint_comm(group)
    rank = comm.rank
    if writer_rank is not None and not 0 <= int(writer_rank) < comm.world_size:
        raise ValueError(f"For 'save_checkpoint', writer_rank={writer_rank} is not a rank of "
                         f"the group (world size {comm.world_size}).")
    error: BaseException | None = None
    descs: list[dict[str, Any]] = []
    records: list[Record] = []
    target: Any = None
    try:
        records, lays = _local_records(save_obj, layouts, choice_func, append_dict)
        descs = [_describe(r, lays.get(r.name), rank) for r in records]
        if integrated_save:
            if writer_rank is None or rank == writer_rank:
                name = os.fspath(ckpt_file_name) if isinstance(ckpt_file_name, os.PathLike) \
                    else ckpt_file_name
                if not isinstance(name, str):
                    raise TypeError("For 'save_checkpoint', 'ckpt_file_name' must be string, but "
                                    f"got {type(name)}.")
                store, key = _resolve(name, storage_options)
                if store.isdir(key):
                    raise IsADirectoryError(f"For 'save_checkpoint', the parameter "
                                            f"`ckpt_file_name`: {store.describe(key)} is a "
                                            "directory, it must be a file name.")
                if not key.endswith(format):
                    key = f"{key}.{format}"
                target = (store, key)
        else:
            directory, rel = checkpoint_directory(os.fspath(ckpt_file_name), rank, format)
            store, dkey = _resolve(directory, storage_options)
            if is_committed(store, dkey):
                raise FileExistsError(
                    f"{store.describe(dkey)} already holds a committed checkpoint; save each "
                    "checkpoint into its own directory (remove the old one first to replace "
                    "it).")
            target = (store, dkey, rel)
    except BaseException as e:  # noqa: BLE001 - every rank hears about it
        error = e
    reports = comm.exchange(["ok", descs, None if target is None or integrated_save else
                             [target[1], target[2]]] if error is None
                            else ["error", f"{type(error).__name__}: {error}"])
    _raise_failures(reports, f"Save of {ckpt_file_name}", error)
    if not integrated_save:
        dirs = {tuple(rep[2]) for rep in reports}
        if len(dirs) != 1:
            raise ValueError(f"For 'save_checkpoint', the ranks name different checkpoint "
                             f"directories {sorted(d[0] for d in dirs)[:4]}; a sliced save "
                             "needs one directory for all ranks.")
    plan = _global_plan([rep[1] for rep in reports])
    opt = _Options(format, crc_check, enc_key, enc_mode, remove_redundancy, durable)

    def run(staged: list[Record]) -> DistSaveResult:
        local = {r.name: r.value for r in staged}
        if integrated_save:
            store, key = target if target is not None else (None, "")
            return _save_integrated(plan, local, comm, cast(Store, store), key,
                                    writer_rank, opt)
        store, dkey, rel = target
        return _save_sliced(plan, staged, comm, store, dkey, rel, opt)

    if async_save:
        def run_then_release(staged: list[Record]) -> DistSaveResult:
            try:
                return run(staged)
            finally:
                _group_lock.release()

        writer.submit(records, run_then_release, target=str(ckpt_file_name), mode="thread")
        return None
    return run(records)
