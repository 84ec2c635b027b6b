"""Layout cases shared by the live MindSpore tests and the golden-file generator.

A case is a full model (seeded tensors), a source layout set and a destination layout set
(None: unsliced).  ``write_sources`` slices the model into ``src/rank_<r>/net-1_1.<fmt>`` with
mindckpt; ``ms_layout_spec`` turns a layout into the spec the oracle worker writes with
MindSpore's own protobuf classes."""

from __future__ import annotations

import os

import numpy as np

import mindckpt as ms
from mindckpt.parallel.layout import TensorLayout

SHAPES = {"w": (8, 16), "b": (16,), "emb": (16, 4), "v": (8, 8)}


def full_model(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(s).astype(np.float32) for n, s in SHAPES.items()}


def L(dev, tmap, name, **kw) -> TensorLayout:  # noqa: N802
    return TensorLayout(dev, tmap, SHAPES[name], name=name, **kw)


def _std(dev, w, b, emb, v, stages=(0,)):
    return {"w": L(dev, w, "w", stages=stages), "b": L(dev, b, "b", stages=stages),
            "emb": L(dev, emb, "emb", stages=stages), "v": L(dev, v, "v", stages=stages)}


CASES = {
    # name: (src layouts, dst layouts)
    "2x2_to_2": (_std([2, 2], [1, 0], [0], [-1, 1], [0, -1]),
                 _std([2], [0, -1], [-1], [-1, 0], [-1, 0])),
    "2_to_2x2": (_std([2], [-1, 0], [0], [0, -1], [-1, -1]),
                 _std([2, 2], [1, 0], [0], [-1, 1], [0, -1])),
    "2x2_to_1": (_std([2, 2], [1, 0], [0], [-1, 1], [0, -1]), None),
    "1_to_4": (None, _std([4], [0, -1], [0], [-1, 0], [-1, -1])),
    "2x4_to_2": (_std([2, 4], [1, 0], [0], [(1, 0), -1], [-1, 0]),
                 _std([2], [0, -1], [-1], [-1, 0], [0, -1])),
    "1x8_to_2": (_std([1, 8], [-1, 0], [0], [0, -1], [0, -1]),
                 _std([2], [-1, 0], [0], [0, -1], [-1, 0])),
    "nested_2x2_to_1": (_std([2, 2], [-1, (1, 0)], [(1, 0)], [(1, 0), -1], [(0, 1), -1]), None),
    "optshard_2x2_to_2": ({"w": L([2, 2], [-1, 0], "w", opt_shard_size=2, opt_shard_step=2),
                           "b": L([2, 2], [0], "b"),
                           "emb": L([2, 2], [-1, -1], "emb", opt_shard_size=-1,
                                    opt_shard_step=1),
                           "v": L([2, 2], [0, -1], "v", opt_shard_size=2, opt_shard_step=2)},
                          _std([2], [0, -1], [-1], [-1, 0], [-1, 0])),
}

PIPELINE_SRC = {"w": L([2], [0, -1], "w", stages=(0,)), "b": L([2], [0], "b", stages=(0,)),
                "emb": L([2], [-1, 0], "emb", stages=(1,)), "v": L([2], [-1, 0], "v", stages=(1,))}
PIPELINE_DST_2X1 = {"w": L([1], [-1, -1], "w", stages=(0,)), "b": L([1], [-1], "b", stages=(0,)),
                    "emb": L([1], [-1, -1], "emb", stages=(1,)),
                    "v": L([1], [-1, -1], "v", stages=(1,))}


def world(layouts) -> int:
    if layouts is None:
        return 1
    lay = next(iter(layouts.values()))
    return lay.device_num * (1 + max(s for x in layouts.values() for s in x.stages))


def expected_slice(full: np.ndarray, layouts, name: str, rank: int):
    if layouts is None or name not in layouts:
        return full
    box = layouts[name].box(rank)
    return None if box is None else full[tuple(slice(a, b) for a, b in box)]


def write_sources(directory, layouts, model, fmt: str = "ckpt", extras: bool = True) -> None:
    for r in range(world(layouts)):
        d = os.path.join(directory, f"rank_{r}")
        os.makedirs(d, exist_ok=True)
        items = []
        for n, full in model.items():
            part = expected_slice(full, layouts, n, r)
            if part is not None:
                items.append({"name": n, "data": ms.Tensor(np.ascontiguousarray(part))})
        if extras:
            items.append({"name": "global_step", "data": ms.Tensor(np.array(42, np.int32))})
        ms.save_checkpoint(items, os.path.join(d, f"net-1_1.{fmt}"), format=fmt)


def ms_layout_spec(lay: TensorLayout) -> dict:
    if lay.is_nested:
        tms = [list(e) if isinstance(e, tuple) else [e] for e in lay.tensor_map]
        if len(tms) == 1:
            tms.append([])
    else:
        tms = [list(lay.tensor_map)]
    return {"dev_matrix": list(lay.dev_matrix), "tensor_maps": tms,
            "param_split_shape": list(lay.param_split_shape), "field": 0,
            "opt_weight_shard_step": lay.opt_shard_step if lay.opt_active else 0,
            "opt_weight_shard_size": lay.opt_shard_size if lay.opt_active else 0}
