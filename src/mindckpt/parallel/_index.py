"""The index of a distributed checkpoint directory (``mindckpt.index.json``), version 1.

JSON only (never pickle), written by one rank just before the commit marker::

    {"version": 1, "world_size": 4, "format": "safetensors", "integrated_save": false,
     "remove_redundancy": true, "strategy_file": "strategy.ckpt",
     "files": ["rank_0/net.safetensors", ...],
     "params": {"w": {"dtype": "Float32", "full_shape": [8, 12],
                      "layout": {"dev_matrix": [2, 2], "tensor_map": [1, 0],
                                 "opt_shard_size": 0, "opt_shard_step": 0, "stages": [0]},
                      "chunks": [{"file": 0, "box": [[0, 4], [0, 6]]}, ...]},
                "global_step": {"dtype": "Int64", "full_shape": [], "layout": null,
                                "chunks": [{"file": 0, "box": []}, ...]},
                "note": {"dtype": "str", "full_shape": null, "layout": null,
                         "chunks": [{"file": 0, "box": null}]}}}

``file`` is a position in ``files`` (paths relative to the directory).  A chunk's ``box`` is
``(start, stop)`` per dimension of the full tensor.  The index adds nothing MindSpore's tools
need (they read the rank directories and ``strategy.ckpt``); it makes load planning a lookup
and records which rank owns each de-duplicated slice.  Everything read back is checked:
a malformed index is a :class:`~mindckpt.errors.FormatError` naming the file and the entry.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from .. import tensor as T
from ..errors import FormatError
from .layout import Box, LayoutError, TensorLayout

__all__ = ["INDEX_VERSION", "Chunk", "ParamEntry", "DistIndex", "layout_to_json",
           "layout_from_json", "encode_index", "decode_index"]

INDEX_VERSION = 1


def layout_to_json(lay: TensorLayout) -> dict[str, Any]:
    return {"dev_matrix": list(lay.dev_matrix),
            "tensor_map": [list(e) if isinstance(e, tuple) else e for e in lay.tensor_map],
            "opt_shard_size": lay.opt_shard_size, "opt_shard_step": lay.opt_shard_step,
            "stages": list(lay.stages),
            **({"param_split_shape": list(lay.param_split_shape)} if lay.param_split_shape
               else {})}


def layout_from_json(obj: Any, full_shape: tuple[int, ...], name: str) -> TensorLayout:
    if not isinstance(obj, dict):
        raise LayoutError(f"parameter '{name}': a layout must be an object")
    tmap = tuple(tuple(e) if isinstance(e, list) else e for e in obj["tensor_map"])
    return TensorLayout(tuple(obj["dev_matrix"]), tmap, full_shape,
                        int(obj.get("opt_shard_size", 0)), int(obj.get("opt_shard_step", 0)),
                        tuple(obj.get("stages", (0,))),
                        tuple(obj.get("param_split_shape", ())), name=name)


@dataclass(frozen=True)
class Chunk:
    file: str  # relative to the checkpoint directory
    box: Box | None  # None: a str entry


@dataclass
class ParamEntry:
    name: str
    dtype: str  # MindSpore type name, or "str"
    full_shape: tuple[int, ...] | None
    layout: TensorLayout | None
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def type(self) -> T.Type | None:
        return None if self.dtype == "str" else T.dtype_of_name(self.dtype)


@dataclass
class DistIndex:
    world_size: int
    format: str
    integrated_save: bool
    remove_redundancy: bool
    params: dict[str, ParamEntry]
    strategy_file: str | None = "strategy.ckpt"


def encode_index(ix: DistIndex) -> bytes:
    files: list[str] = []
    pos: dict[str, int] = {}
    params: dict[str, Any] = {}
    for name, p in ix.params.items():
        chunks = []
        for c in p.chunks:
            if c.file not in pos:
                pos[c.file] = len(files)
                files.append(c.file)
            chunks.append({"file": pos[c.file],
                           "box": None if c.box is None else [list(b) for b in c.box]})
        params[name] = {"dtype": p.dtype,
                        "full_shape": None if p.full_shape is None else list(p.full_shape),
                        "layout": None if p.layout is None else layout_to_json(p.layout),
                        "chunks": chunks}
    doc = {"version": INDEX_VERSION, "world_size": ix.world_size, "format": ix.format,
           "integrated_save": ix.integrated_save, "remove_redundancy": ix.remove_redundancy,
           "strategy_file": ix.strategy_file, "files": files, "params": params}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _bad(path: str, what: str) -> FormatError:
    return FormatError(f"The distributed checkpoint index {path} is malformed: {what}. Restore "
                       "the directory from a copy, or save it again.")


def _ints(v: Any, path: str, what: str) -> tuple[int, ...]:
    if not isinstance(v, list) or not all(isinstance(d, int) and not isinstance(d, bool)
                                          and d >= 0 for d in v):
        raise _bad(path, f"{what} must be a list of non-negative integers")
    return tuple(v)


def decode_index(data: bytes, path: str) -> DistIndex:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _bad(path, f"not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise _bad(path, "the top level is not an object")
    if doc.get("version") != INDEX_VERSION:
        raise _bad(path, f"version {doc.get('version')!r}, this mindckpt reads version "
                   f"{INDEX_VERSION}")
    files = doc.get("files")
    params = doc.get("params")
    world = doc.get("world_size")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise _bad(path, "'files' must be a list of paths")
    for f in files:
        if f.startswith("/") or ".." in f.split("/"):
            raise _bad(path, f"file {f!r} points outside the checkpoint directory")
    if not isinstance(params, dict) or not isinstance(world, int) or world < 1:
        raise _bad(path, "'params' must be an object and 'world_size' a positive integer")
    out: dict[str, ParamEntry] = {}
    for name, p in params.items():
        if not isinstance(p, dict) or not isinstance(p.get("chunks"), list):
            raise _bad(path, f"parameter '{name}' has no chunk list")
        dtype = p.get("dtype")
        if dtype != "str" and (not isinstance(dtype, str) or T.dtype_of_name(dtype) is None):
            raise _bad(path, f"parameter '{name}' has unknown dtype {dtype!r}")
        full = None if p.get("full_shape") is None else _ints(p["full_shape"], path,
                                                              f"'{name}'.full_shape")
        lay = None
        if p.get("layout") is not None:
            if full is None:
                raise _bad(path, f"parameter '{name}' has a layout but no shape")
            try:
                lay = layout_from_json(p["layout"], full, name)
            except (LayoutError, KeyError, TypeError, ValueError) as e:
                raise _bad(path, f"parameter '{name}' has a bad layout ({e})") from None
        chunks = []
        for c in p["chunks"]:
            if not isinstance(c, dict) or not isinstance(c.get("file"), int) or \
                    not 0 <= c["file"] < len(files):
                raise _bad(path, f"parameter '{name}' has a chunk without a valid file")
            box = c.get("box")
            if box is None:
                if dtype != "str":
                    raise _bad(path, f"tensor '{name}' has a chunk without a box")
                chunks.append(Chunk(files[c["file"]], None))
                continue
            if full is None or not isinstance(box, list) or len(box) != len(full):
                raise _bad(path, f"parameter '{name}' has a chunk box of the wrong rank")
            pairs = []
            for b, d in zip(box, full, strict=True):
                lo, hi = _ints(b, path, f"'{name}' chunk box")[:2] if len(b) == 2 else (-1, -1)
                if not 0 <= lo <= hi <= d:
                    raise _bad(path, f"parameter '{name}' has a chunk box {box} outside its "
                               f"shape {list(full)}")
                pairs.append((lo, hi))
            chunks.append(Chunk(files[c["file"]], tuple(pairs)))
        out[name] = ParamEntry(name, dtype, full, lay, chunks)
    return DistIndex(world, str(doc.get("format", "")), bool(doc.get("integrated_save")),
                     bool(doc.get("remove_redundancy")), out, doc.get("strategy_file"))


def numel(shape: tuple[int, ...] | None) -> int:
    return 0 if shape is None else math.prod(shape)
