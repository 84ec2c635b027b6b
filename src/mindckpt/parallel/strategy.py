"""MindSpore strategy files (``node_strategy.proto``, package ``mindspore.straspb``), both ways.

Schema (proto2; repeated scalars unpacked; ``*`` = required)::

    ParallelStrategyMap  1 current_stage* uint32 · 2 parallel_strategy_item [ParallelStrategyItem]
                         3 parallel_layout_item [ParallelLayoutItem]
    ParallelStrategyItem 1 node_name* string · 2 parallel_strategys* ParallelStrategys
    ParallelStrategys    1 stage* uint32 · 2 parallel_strategy [ParallelStrategy{1 dim [uint32]}]
    ParallelLayoutItem   1 param_name* string · 2 parallel_layouts* ParallelLayouts
    ParallelLayouts      1 dev_matrix [DevMatrix{1 dim [uint32]}] · 2 tensor_map [TensorMap{1 dim
                         [int32]}] · 3 param_split_shape [ParamSplitShape{1 dim [int64]}]
                         4 indices_offset [IndicesOffset{1 dim [int64]}] · 5 field* int32
                         6 opt_weight_shard_step* int32 · 7 opt_weight_shard_size* int32
    ParallelGroupMap     1 parallel_group_item [ParallelGroupItem{1 group_name* string,
                         2 parallel_group_ranks* ParallelGroupRanks{1 dim [uint32]}}]
                         2 ckpt_restore_rank_list* ParallelGroupRanks

Nested tensor maps (``Layout`` API): one ``TensorMap`` per tensor dimension, plus an empty one
when the tensor has one dimension; otherwise one flat ``TensorMap``.  A merged pipeline file
names each parameter ``"<stage>-<name>"`` and has ``current_stage`` 1.

The JSON variant (chosen by a ``.json`` extension, as in MindSpore) holds the same fields:
``{"current_stage": n, "parallel_strategy_item": {node: {"stage": s, "parallel_strategy":
[[...]]}}, "parallel_layout_item": {name: {"dev_matrix": [...], "tensor_map": [...],
"param_split_shape": [...], "indices_offset": [...], "field": 0, "opt_weight_shard_step": 0,
"opt_weight_shard_size": 0}}}``.

Unlike MindSpore, a file with missing required fields, a wrong wire type or a truncated
message is a ``FormatError`` naming the file and the parameter, never an empty layout.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import FormatError
from ..storage import LOCAL
from . import _pbwire as W
from .layout import LayoutError, MapEntry, TensorLayout

__all__ = [
    "Dims",
    "ParallelLayouts",
    "StrategyItem",
    "StrategyMap",
    "ParamStrategy",
    "decode_strategy",
    "encode_strategy",
    "read_strategy",
    "write_strategy",
    "load_layout_map",
    "build_searched_strategy",
    "merge_pipeline_strategys",
    "restore_group_info_list",
    "encode_group_info",
]

_STAGE_PREFIX = re.compile(r"^(\d+)-(.+)$", re.S)


class Dims:
    """One ``DevMatrix`` / ``TensorMap`` / ``ParamSplitShape`` / ``IndicesOffset`` message:
    ``.dim`` is its list of numbers (MindSpore's field access: ``layout.dev_matrix[0].dim``)."""

    __slots__ = ("dim",)

    def __init__(self, dim: Iterable[int] = ()):
        self.dim = [int(d) for d in dim]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Dims) and self.dim == other.dim

    def __repr__(self) -> str:
        return f"Dims({self.dim})"


@dataclass
class ParallelLayouts:
    """A parameter's ``ParallelLayouts`` message, with MindSpore's field names."""

    dev_matrix: list[Dims] = field(default_factory=list)
    tensor_map: list[Dims] = field(default_factory=list)
    param_split_shape: list[Dims] = field(default_factory=list)
    indices_offset: list[Dims] = field(default_factory=list)
    field: int = 0
    opt_weight_shard_step: int = 0
    opt_weight_shard_size: int = 0

    def map_entries(self) -> list[MapEntry]:
        """The tensor map with nested entries as tuples (MindSpore's ``_convert_to_list``)."""
        if len(self.tensor_map) > 1:
            out: list[MapEntry] = []
            for tm in self.tensor_map:
                if tm.dim:
                    out.append(tm.dim[0] if len(tm.dim) == 1 else tuple(tm.dim))
            return out
        return list(self.tensor_map[0].dim) if self.tensor_map else []

    @classmethod
    def from_layout(cls, layout: TensorLayout) -> ParallelLayouts:
        """The message MindSpore writes for ``layout`` (nested maps as one entry per dim)."""
        if layout.is_nested:
            tms = [Dims(e if isinstance(e, tuple) else (e,)) for e in layout.tensor_map]
            if len(tms) == 1:
                tms.append(Dims())
        else:
            tms = [Dims(e for e in layout.tensor_map if isinstance(e, int))]
        return cls(
            dev_matrix=[Dims(layout.dev_matrix)],
            tensor_map=tms,
            param_split_shape=[Dims(layout.param_split_shape)],
            indices_offset=[Dims()],
            field=layout.field_size,
            opt_weight_shard_step=layout.opt_shard_step if layout.opt_active else 0,
            opt_weight_shard_size=layout.opt_shard_size if layout.opt_active else 0,
        )


@dataclass
class StrategyItem:
    """One operator's ``ParallelStrategyItem`` (kept for round trips; unused by the tools)."""

    node_name: str
    stage: int
    strategies: list[list[int]] = field(default_factory=list)


@dataclass
class StrategyMap:
    """A whole ``ParallelStrategyMap``: ``layouts`` keeps the file's order."""

    current_stage: int = 0
    strategy_items: list[StrategyItem] = field(default_factory=list)
    layouts: dict[str, ParallelLayouts] = field(default_factory=dict)


@dataclass(frozen=True)
class ParamStrategy:
    """One parameter's strategy without a shape, the stages holding it merged (the list form
    MindSpore's tools use: dev_matrix, tensor_map, param_split_shape, field, step, size,
    stages)."""

    name: str
    dev_matrix: tuple[int, ...]
    tensor_map: tuple[MapEntry, ...]
    param_split_shape: tuple[int, ...]
    field: int
    opt_shard_step: int
    opt_shard_size: int
    stages: tuple[int, ...]

    @property
    def device_num(self) -> int:
        n = 1
        for d in self.dev_matrix:
            n *= d
        return n

    def layout(self, full_shape: Sequence[int]) -> TensorLayout:
        return TensorLayout(self.dev_matrix, self.tensor_map, tuple(full_shape),
                            self.opt_shard_size, self.opt_shard_step, self.stages,
                            self.param_split_shape, self.field, self.name)

    def layout_from_local(self, local_shape: Sequence[int]) -> TensorLayout:
        """The layout whose slices have ``local_shape`` (the full shape worked out)."""
        if self.field:
            raise LayoutError(f"parameter '{self.name}': field={self.field} (field slicing) is "
                              "not supported")
        return TensorLayout.from_local_shape(
            self.dev_matrix, self.tensor_map, local_shape, opt_shard_size=self.opt_shard_size,
            opt_shard_step=self.opt_shard_step, stages=self.stages,
            param_split_shape=self.param_split_shape, name=self.name)


# --------------------------------------------------------------------------- protobuf decode


def _fail(path: str, what: str) -> FormatError:
    return FormatError(
        f"Failed to read the strategy file {path}: {what}. The file must be a "
        "ParallelStrategyMap written by MindSpore's save_param_strategy_file / "
        "strategy_ckpt_config or by mindckpt.parallel.write_strategy (a '.json' name is "
        "read as JSON)."
    )


def _one(fields: W.Fields, num: int, what: str, wire: int) -> Any:
    items = fields.get(num)
    if not items:
        raise W.WireError(f"{what} is missing (a required field)")
    w, v = items[-1]  # proto2: the last occurrence wins
    if w != wire:
        raise W.WireError(f"{what} has wire type {w}, expected {wire}")
    return v


def _dims(fields: W.Fields, num: int, what: str) -> list[Dims]:
    out = []
    for w, v in fields.get(num, []):
        if w != 2:
            raise W.WireError(f"{what} is not a message")
        if not isinstance(v, bytes):
            raise W.WireError(f"{what} is not a message")
        inner = W.parse(v, what)
        out.append(Dims(W.varints(inner.get(1, []), what)))
    return out


def _decode_layouts(buf: bytes, name: str) -> ParallelLayouts:
    what = f"parameter '{name}'"
    f = W.parse(buf, what)
    lay = ParallelLayouts(
        dev_matrix=[Dims(W.unsigned32(d, what) for d in m.dim)
                    for m in _dims(f, 1, f"{what} dev_matrix")],
        tensor_map=[Dims(W.signed32(d, what) for d in m.dim)
                    for m in _dims(f, 2, f"{what} tensor_map")],
        param_split_shape=[Dims(W.signed64(d, what) for d in m.dim)
                           for m in _dims(f, 3, f"{what} param_split_shape")],
        indices_offset=[Dims(W.signed64(d, what) for d in m.dim)
                        for m in _dims(f, 4, f"{what} indices_offset")],
        field=W.signed32(_one(f, 5, f"{what} field", 0), what),
        opt_weight_shard_step=W.signed32(_one(f, 6, f"{what} opt_weight_shard_step", 0), what),
        opt_weight_shard_size=W.signed32(_one(f, 7, f"{what} opt_weight_shard_size", 0), what),
    )
    _check_layouts(lay, what)
    return lay


def _check_layouts(lay: ParallelLayouts, what: str) -> None:
    if len(lay.dev_matrix) != 1:
        raise W.WireError(f"{what} has {len(lay.dev_matrix)} dev_matrix messages, expected 1")
    if not lay.tensor_map:
        raise W.WireError(f"{what} has no tensor_map")
    if not lay.param_split_shape:
        lay.param_split_shape.append(Dims())  # MindSpore reads param_split_shape[0]
    if not lay.indices_offset:
        lay.indices_offset.append(Dims())


def _text(b: Any, what: str) -> str:
    try:
        return bytes(b).decode("utf-8")
    except UnicodeDecodeError:
        raise W.WireError(f"{what} is not UTF-8") from None


def decode_strategy(data: bytes, path: str = "<bytes>") -> StrategyMap:
    """Parse a ``ParallelStrategyMap``; any defect raises ``FormatError`` naming ``path``."""
    try:
        top = W.parse(data, "ParallelStrategyMap")
        out = StrategyMap(current_stage=W.unsigned32(
            _one(top, 1, "current_stage", 0), "current_stage"))
        for w, v in top.get(2, []):
            if w != 2:
                raise W.WireError("parallel_strategy_item is not a message")
            item = W.parse(v, "parallel_strategy_item")  # type: ignore[arg-type]
            node = _text(_one(item, 1, "parallel_strategy_item node_name", 2), "node_name")
            sub = W.parse(_one(item, 2, f"node '{node}' parallel_strategys", 2), node)
            stage = W.unsigned32(_one(sub, 1, f"node '{node}' stage", 0), node)
            strategies = [d.dim for d in _dims(sub, 2, f"node '{node}' parallel_strategy")]
            out.strategy_items.append(StrategyItem(node, stage, strategies))
        for w, v in top.get(3, []):
            if w != 2:
                raise W.WireError("parallel_layout_item is not a message")
            item = W.parse(v, "parallel_layout_item")  # type: ignore[arg-type]
            name = _text(_one(item, 1, "parallel_layout_item param_name", 2), "param_name")
            if name in out.layouts:
                raise W.WireError(f"parameter '{name}' appears twice")
            out.layouts[name] = _decode_layouts(_one(item, 2, f"parameter '{name}' "
                                                     "parallel_layouts", 2), name)
    except W.WireError as e:
        raise _fail(path, str(e)) from None
    return out


# --------------------------------------------------------------------------- protobuf encode


def _enc_dims(num: int, dims: Sequence[Dims]) -> bytes:
    out = b""
    for d in dims:
        out += W.emit_bytes(num, b"".join(W.emit_varint(1, v) for v in d.dim))
    return out


def _enc_layouts(lay: ParallelLayouts) -> bytes:
    return b"".join([
        _enc_dims(1, lay.dev_matrix), _enc_dims(2, lay.tensor_map),
        _enc_dims(3, lay.param_split_shape), _enc_dims(4, lay.indices_offset),
        W.emit_varint(5, lay.field), W.emit_varint(6, lay.opt_weight_shard_step),
        W.emit_varint(7, lay.opt_weight_shard_size),
    ])


def encode_strategy(smap: StrategyMap) -> bytes:
    """The bytes MindSpore's ``SerializeToString`` gives for ``smap`` (field order kept)."""
    out = [W.emit_varint(1, smap.current_stage)]
    for it in smap.strategy_items:
        sub = W.emit_varint(1, it.stage) + _enc_dims(2, [Dims(s) for s in it.strategies])
        out.append(W.emit_bytes(2, W.emit_bytes(1, it.node_name.encode()) + W.emit_bytes(2, sub)))
    for name, lay in smap.layouts.items():
        out.append(W.emit_bytes(3, W.emit_bytes(1, name.encode()) +
                                W.emit_bytes(2, _enc_layouts(lay))))
    return b"".join(out)


# --------------------------------------------------------------------------- JSON


def _json_decode(text: str, path: str) -> StrategyMap:
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise _fail(path, f"invalid JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("parallel_layout_item"), dict):
        raise _fail(path, "the JSON object has no 'parallel_layout_item' mapping")
    out = StrategyMap(current_stage=_int(doc.get("current_stage", 0), path, "current_stage"))
    items = doc.get("parallel_strategy_item") or {}
    if not isinstance(items, dict):
        raise _fail(path, "'parallel_strategy_item' must be a mapping")
    for node, spec in items.items():
        if not isinstance(spec, dict) or "stage" not in spec:
            raise _fail(path, f"node '{node}' lacks 'stage'")
        strategies = spec.get("parallel_strategy", [])
        out.strategy_items.append(StrategyItem(node, _int(spec["stage"], path, node),
                                               [list(map(int, s)) for s in strategies]))
    for name, spec in doc["parallel_layout_item"].items():
        what = f"parameter '{name}'"
        if not isinstance(spec, dict):
            raise _fail(path, f"{what} is not an object")
        missing = [k for k in ("dev_matrix", "tensor_map", "field", "opt_weight_shard_step",
                               "opt_weight_shard_size") if k not in spec]
        if missing:
            raise _fail(path, f"{what} lacks required field(s) {missing}")
        tmap = spec["tensor_map"]
        if not isinstance(tmap, list) or not isinstance(spec["dev_matrix"], list):
            raise _fail(path, f"{what}: dev_matrix and tensor_map must be lists")
        if any(isinstance(e, list) for e in tmap):
            tms = [Dims(_ints(e if isinstance(e, list) else [e], path, what)) for e in tmap]
            if len(tms) == 1:
                tms.append(Dims())
        else:
            tms = [Dims(_ints(tmap, path, what))]
        out.layouts[name] = ParallelLayouts(
            dev_matrix=[Dims(_ints(spec["dev_matrix"], path, what))],
            tensor_map=tms,
            param_split_shape=[Dims(_ints(spec.get("param_split_shape", []), path, what))],
            indices_offset=[Dims(_ints(spec.get("indices_offset", []), path, what))],
            field=_int(spec["field"], path, what),
            opt_weight_shard_step=_int(spec["opt_weight_shard_step"], path, what),
            opt_weight_shard_size=_int(spec["opt_weight_shard_size"], path, what),
        )
    return out


def _int(v: Any, path: str, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _fail(path, f"{what}: expected an integer, got {v!r}")
    return v


def _ints(v: Any, path: str, what: str) -> list[int]:
    if not isinstance(v, list):
        raise _fail(path, f"{what}: expected a list of integers, got {v!r}")
    return [_int(x, path, what) for x in v]


def _json_encode(smap: StrategyMap) -> str:
    layouts: dict[str, Any] = {}
    for name, lay in smap.layouts.items():
        entries = lay.map_entries()
        layouts[name] = {
            "dev_matrix": lay.dev_matrix[0].dim,
            "tensor_map": [list(e) if isinstance(e, tuple) else e for e in entries]
            if len(lay.tensor_map) > 1 else lay.tensor_map[0].dim,
            "param_split_shape": lay.param_split_shape[0].dim if lay.param_split_shape else [],
            "indices_offset": lay.indices_offset[0].dim if lay.indices_offset else [],
            "field": lay.field,
            "opt_weight_shard_step": lay.opt_weight_shard_step,
            "opt_weight_shard_size": lay.opt_weight_shard_size,
        }
    items = {it.node_name: {"stage": it.stage, "parallel_strategy": it.strategies}
             for it in smap.strategy_items}
    return json.dumps({"current_stage": smap.current_stage, "parallel_strategy_item": items,
                       "parallel_layout_item": layouts})


# --------------------------------------------------------------------------- files


def _write(path: str, payload: bytes) -> None:
    with LOCAL.open_write(path, mode=0o644) as w:
        w.write(payload)


def _is_json(path: str) -> bool:
    return path[-5:] == ".json"  # MindSpore's test, case-sensitive


def read_strategy(path: str) -> StrategyMap:
    """Read a strategy file (JSON when the name ends in ``.json``, else protobuf)."""
    if not isinstance(path, str):
        raise TypeError("For 'build_searched_strategy', the argument 'strategy_filename' should "
                        f"be string, but got {type(path)}.")
    if not os.path.isfile(path):
        raise ValueError(f"For 'build_searched_strategy', no such strategy file: {path}. "
                         "Please check whether the 'strategy_filename' exists.")
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ValueError(f"For 'build_searched_strategy', the strategy file {path} should not "
                         "be empty. Please check whether the 'strategy_filename' is correct.")
    if _is_json(path):
        try:
            return _json_decode(data.decode("utf-8"), path)
        except UnicodeDecodeError:
            raise _fail(path, "a '.json' strategy file must be UTF-8 text") from None
    return decode_strategy(data, path)


def write_strategy(
    path: str,
    layouts: Mapping[str, TensorLayout | ParallelLayouts],
    *,
    current_stage: int | None = None,
    strategy_items: Sequence[StrategyItem] = (),
) -> None:
    """Write a strategy file MindSpore reads (``.json`` names as JSON).

    ``layouts`` maps parameter names to ``TensorLayout`` (or raw ``ParallelLayouts``).  A
    pipeline layout set (layouts in several stages) is written as MindSpore's merged file:
    ``"<stage>-<name>"`` keys, ``current_stage`` 1, and one strategy item per stage so that
    MindSpore can tell the stages apart.  ``current_stage`` defaults to the single stage used.
    """
    msgs: dict[str, ParallelLayouts] = {}
    stages: set[int] = set()
    for lay in layouts.values():
        if isinstance(lay, TensorLayout):
            stages.update(lay.stages)
    merged = len(stages) > 1
    for name, lay in layouts.items():
        if isinstance(lay, TensorLayout):
            msg = ParallelLayouts.from_layout(lay)
            if merged:
                for s in lay.stages:
                    msgs[f"{s}-{name}"] = msg
            else:
                msgs[name] = msg
        else:
            msgs[name] = lay
    items = list(strategy_items)
    if not items:
        items = [StrategyItem(f"mindckpt-stage{s}", s, []) for s in sorted(stages or {0})]
    stage = current_stage if current_stage is not None else (
        1 if merged else next(iter(stages), 0))
    smap = StrategyMap(stage, items, msgs)
    payload = _json_encode(smap).encode() if _is_json(path) else encode_strategy(smap)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _write(path, payload)


def build_searched_strategy(strategy_filename: str) -> dict[str, ParallelLayouts]:
    """MindSpore's ``build_searched_strategy``: ``{param_name: ParallelLayouts}``.

    The layouts have MindSpore's field access (``dev_matrix[0].dim``, ``tensor_map[i].dim``,
    ``param_split_shape[0].dim``, ``field``, ``opt_weight_shard_step``,
    ``opt_weight_shard_size``).  ``None`` gives ``None``, as in MindSpore.
    """
    if strategy_filename is None:
        return None  # type: ignore[return-value]
    return dict(read_strategy(strategy_filename).layouts)


def load_layout_map(strategy: str | Mapping[str, Any] | None,
                    *, label: str = "strategy") -> dict[str, ParamStrategy] | None:
    """Per parameter, its strategy with pipeline stages merged; ``None`` for ``None``.

    A name is taken as ``"<stage>-<name>"`` only when the part before the first ``-`` is a
    number (MindSpore splits every name at ``-``, so ``"layer-1.w"`` breaks its tools).
    """
    if strategy is None:
        return None
    if isinstance(strategy, str):
        path = strategy
        msgs = read_strategy(strategy).layouts
    else:
        if all(isinstance(v, ParamStrategy) for v in strategy.values()):
            return dict(strategy)  # type: ignore[arg-type]
        path, msgs = label, dict(strategy)
    out: dict[str, ParamStrategy] = {}
    for key_name, lay in msgs.items():
        m = _STAGE_PREFIX.match(key_name)
        stage, name = (int(m.group(1)), m.group(2)) if m else (0, key_name)
        try:
            entries = tuple(lay.map_entries())
            dev = tuple(lay.dev_matrix[0].dim)
            split = tuple(lay.param_split_shape[0].dim) if lay.param_split_shape else ()
        except (IndexError, AttributeError):
            raise _fail(path, f"parameter '{key_name}' lacks dev_matrix or tensor_map") from None
        ps = ParamStrategy(name, dev, entries, split, int(lay.field),
                           int(lay.opt_weight_shard_step), int(lay.opt_weight_shard_size), (stage,))
        prev = out.get(name)
        if prev is None:
            out[name] = ps
            continue
        first = prev if min(prev.stages) < stage else ps
        out[name] = ParamStrategy(name, first.dev_matrix, first.tensor_map,
                                  first.param_split_shape, first.field, first.opt_shard_step,
                                  first.opt_shard_size, tuple(sorted({*prev.stages, stage})))
    devs = {p.device_num for p in out.values()}
    if len(devs) > 1:
        raise _fail(path, f"parameters use device matrices of different sizes {sorted(devs)}; "
                    "every stage must have the same number of devices")
    return out


def merge_pipeline_strategys(src_strategy_dirs: str, dst_strategy_file: str) -> None:
    """MindSpore's ``merge_pipeline_strategys``: one file from the per-stage files in a dir.

    Each stage's parameters become ``"<stage>-<name>"``; a stage seen twice (the identical
    files of one stage's ranks) is taken once; ``current_stage`` is 1.
    """
    dst = os.path.abspath(os.path.normpath(dst_strategy_file))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if not os.path.isdir(src_strategy_dirs):
        raise NotADirectoryError(f"src_strategy_dirs {src_strategy_dirs} is not a directory.")
    pb = sorted(glob.glob(os.path.join(src_strategy_dirs, "*.ckpt")))
    js = sorted(glob.glob(os.path.join(src_strategy_dirs, "*.json")))
    if pb and js:
        raise ValueError("The strategys format should be all '.ckpt' or all '.json'")
    files = pb or js
    if not files:
        raise ValueError(f"For 'merge_pipeline_strategys', {src_strategy_dirs} holds no "
                         "'*.ckpt' or '*.json' strategy file.")
    merged = StrategyMap(current_stage=1)
    seen: set[int] = set()
    for path in files:
        smap = read_strategy(path)
        if not smap.strategy_items or not smap.layouts:
            raise ValueError(f"The strategy file {path} is empty")
        stage = smap.strategy_items[0].stage
        if stage in seen:
            continue
        seen.add(stage)
        for name, lay in smap.layouts.items():
            merged.layouts[f"{stage}-{name}"] = lay
        merged.strategy_items.extend(smap.strategy_items)
    payload = _json_encode(merged).encode() if js else encode_strategy(merged)
    _write(dst, payload)


def encode_group_info(restore_ranks: Sequence[int],
                      groups: Mapping[str, Sequence[int]] | None = None) -> bytes:
    """A ``ParallelGroupMap`` (the ``GROUP_INFO_FILE`` MindSpore writes)."""
    out = []
    for name, ranks in (groups or {}).items():
        sub = W.emit_bytes(1, name.encode()) + W.emit_bytes(
            2, b"".join(W.emit_varint(1, r) for r in ranks))
        out.append(W.emit_bytes(1, sub))
    ranks_msg = b"".join(W.emit_varint(1, r) for r in restore_ranks)
    out.append(W.emit_bytes(2, ranks_msg))
    return b"".join(out)


def restore_group_info_list(group_info_file_name: str) -> list[int]:
    """MindSpore's ``restore_group_info_list``: the ranks of ``ckpt_restore_rank_list``."""
    if not isinstance(group_info_file_name, str):
        raise TypeError("For 'restore_group_info_list', the argument 'group_info_file_name' "
                        f"should be str, but got {type(group_info_file_name)}.")
    if not os.path.isfile(group_info_file_name):
        raise ValueError("For 'restore_group_info_list', no such group information file: "
                         f"{group_info_file_name}.")
    if os.path.getsize(group_info_file_name) == 0:
        raise ValueError("For 'restore_group_info_list', the group information file should not "
                         f"be empty: {group_info_file_name}.")
    with open(group_info_file_name, "rb") as f:
        data = f.read()
    try:
        top = W.parse(data, "ParallelGroupMap")
        for w, v in top.get(1, []):
            if w != 2:
                raise W.WireError("parallel_group_item is not a message")
            item = W.parse(v, "parallel_group_item")  # type: ignore[arg-type]
            _one(item, 1, "group_name", 2)
            _one(item, 2, "parallel_group_ranks", 2)
        items = top.get(2)
        if not items:
            raise ValueError("For 'restore_group_info_list', the group information file has no "
                             "restore rank list.")
        w, v = items[-1]
        if w != 2:
            raise W.WireError("ckpt_restore_rank_list is not a message")
        ranks = W.varints(W.parse(v, "ckpt_restore_rank_list").get(1, []),  # type: ignore[arg-type]
                          "ckpt_restore_rank_list")
    except W.WireError as e:
        raise FormatError(f"Failed to read the group information file {group_info_file_name}: "
                          f"{e}. It must be a ParallelGroupMap written by MindSpore "
                          "(GROUP_INFO_FILE).") from None
    if not ranks:
        raise ValueError("For 'restore_group_info_list', the group information file has no "
                         "restore rank list.")
    return [W.unsigned32(r, "rank") for r in ranks]
