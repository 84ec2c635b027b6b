"""Generate tests/golden/parallel/ with REAL MindSpore 2.10.0 (sliced checkpoints).

Run with the MindSpore venv's python (not the library venv), from any directory other than
site-packages/mindspore:

    GLOG_v=3 /work/msvenv/bin/python tests/golden/parallel/make_golden_parallel.py

For each case it writes, all with MindSpore:

    <case>/src_strategy.ckpt, <case>/dst_strategy.ckpt   node_strategy_pb2.ParallelStrategyMap
    <case>/src/rank_<r>/net-1_1.ckpt                     mindspore.save_checkpoint of rank r's
                                                         slices (numpy slicing by the layout rule)
    <case>/ms_out/rank_<r>/g<r>.ckpt                     mindspore.transform_checkpoints output
    unified/ms_unified/...                               mindspore.unified_safetensors output

and manifest.json: versions, the layouts (so the test can check the parsed strategies), the
full model (hex), MindSpore's rank_list_for_transform answers, and for each output file the
names in order.  Every MindSpore output is checked here against the numpy expectation (the
right slice of the full tensor); the script exits 1 on a mismatch.  This script does not
import mindckpt (the MindSpore venv does not have it).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

SHAPES = {"w": (8, 16), "b": (16,), "emb": (16, 4), "v": (8, 8)}


def std(dev, w, b, emb, v, stages=(0,)):
    return {"w": (dev, w), "b": (dev, b), "emb": (dev, emb), "v": (dev, v), "_stages": stages}


CASES = {
    "2x2_to_2": (std([2, 2], [1, 0], [0], [-1, 1], [0, -1]),
                 std([2], [0, -1], [-1], [-1, 0], [-1, 0])),
    "2x4_to_2_nested": (std([2, 4], [1, 0], [0], [[1, 0], -1], [-1, 0]),
                        std([2], [0, -1], [-1], [-1, 0], [0, -1])),
    "2x2_to_1": (std([2, 2], [1, 0], [0], [-1, 1], [0, -1]), None),
    "1_to_4": (None, std([4], [0, -1], [0], [-1, 0], [-1, -1])),
}


def axes(e):
    if isinstance(e, list):
        return [k for k in e if k != -1]
    return [] if e == -1 else [e]


def box(dev, tmap, shape, rank):
    """The slice of local rank ``rank`` (distributed.md §1.1; checked against MindSpore's
    transform output below)."""
    coord = []
    r = rank
    for d in reversed(dev):
        coord.append(r % d)
        r //= d
    coord = coord[::-1]
    n = len(dev)
    out = []
    for size, e in zip(shape, tmap, strict=True):
        idx, parts = 0, 1
        for k in axes(e):
            idx = idx * dev[n - 1 - k] + coord[n - 1 - k]
            parts *= dev[n - 1 - k]
        step = size // parts
        out.append((idx * step, (idx + 1) * step))
    return out


def spec(dev, tmap):
    nested = any(isinstance(e, list) for e in tmap)
    if nested:
        tms = [e if isinstance(e, list) else [e] for e in tmap]
        if len(tms) == 1:
            tms.append([])
    else:
        tms = [list(tmap)]
    return {"dev_matrix": list(dev), "tensor_maps": tms, "param_split_shape": [], "field": 0,
            "opt_weight_shard_step": 0, "opt_weight_shard_size": 0}


def write_strategy(pb, path, layouts, stage=0):
    smap = pb.ParallelStrategyMap()
    smap.current_stage = stage
    item = smap.parallel_strategy_item.add()
    item.node_name = "Default/network-Net/MatMul-op0"
    item.parallel_strategys.stage = stage
    item.parallel_strategys.parallel_strategy.add().dim.extend([1, 1])
    for name, value in layouts.items():
        if name.startswith("_"):
            continue
        s = spec(*value)
        li = smap.parallel_layout_item.add()
        li.param_name = name
        pl = li.parallel_layouts
        pl.dev_matrix.add().dim.extend(s["dev_matrix"])
        for tm in s["tensor_maps"]:
            pl.tensor_map.add().dim.extend(tm)
        pl.param_split_shape.add()
        pl.indices_offset.add()
        pl.field = 0
        pl.opt_weight_shard_step = 0
        pl.opt_weight_shard_size = 0
    with open(path, "wb") as f:
        f.write(smap.SerializeToString())


def world(layouts):
    if layouts is None:
        return 1
    n = 1
    for d in layouts["w"][0]:
        n *= d
    return n


def expected(full, layouts, name, rank):
    if layouts is None:
        return full
    dev, tmap = layouts[name]
    b = box(dev, tmap, full.shape, rank)
    return full[tuple(slice(x, y) for x, y in b)]


def main():
    os.environ.setdefault("GLOG_v", "3")
    os.chdir(tempfile.mkdtemp())
    import numpy as np
    import mindspore as ms
    from mindspore.train import node_strategy_pb2 as pb
    import google.protobuf

    rng = np.random.default_rng(20261201)
    model = {n: rng.standard_normal(s).astype(np.float32) for n, s in SHAPES.items()}
    manifest = {
        "provenance": {
            "mindspore": ms.__version__, "numpy": np.__version__,
            "protobuf": google.protobuf.__version__, "python": sys.version.split()[0],
            "platform": platform.platform(),
            "date": datetime.date.today().isoformat(),
            "command": "GLOG_v=3 /work/msvenv/bin/python "
                       "tests/golden/parallel/make_golden_parallel.py"},
        "model": {n: {"shape": list(a.shape), "dtype": "Float32", "hex": a.tobytes().hex()}
                  for n, a in model.items()},
        "cases": {},
    }
    bad = []
    for case, (src, dst) in CASES.items():
        root = os.path.join(HERE, case)
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        s_path = d_path = None
        if src is not None:
            s_path = os.path.join(root, "src_strategy.ckpt")
            write_strategy(pb, s_path, src)
        if dst is not None:
            d_path = os.path.join(root, "dst_strategy.ckpt")
            write_strategy(pb, d_path, dst)
        for r in range(world(src)):
            d = os.path.join(root, "src", f"rank_{r}")
            os.makedirs(d)
            items = [{"name": n, "data": ms.Tensor(np.ascontiguousarray(
                expected(model[n], src, n, r)))} for n in SHAPES]
            items.append({"name": "global_step", "data": ms.Tensor(np.array(42, np.int32))})
            ms.save_checkpoint(items, os.path.join(d, "net-1_1.ckpt"))
        out = os.path.join(root, "ms_out")
        ms.parallel.transform_checkpoints(os.path.join(root, "src"), out, "g", s_path, d_path)
        files = {}
        for r in range(world(dst)):
            path = os.path.join(out, f"rank_{r}", f"g{r}.ckpt")
            got = ms.load_checkpoint(path)
            files[r] = list(got)
            for n in SHAPES:
                if not np.array_equal(got[n].asnumpy(), expected(model[n], dst, n, r)):
                    bad.append(f"{case}: rank {r} {n}")
        rank_lists = {r: [int(x) for x in ms.parallel.rank_list_for_transform(r, s_path, d_path)]
                      for r in range(world(dst))}
        manifest["cases"][case] = {
            "src": None if src is None else {n: spec(*v) for n, v in src.items()
                                             if not n.startswith("_")},
            "dst": None if dst is None else {n: spec(*v) for n, v in dst.items()
                                             if not n.startswith("_")},
            "src_world": world(src), "dst_world": world(dst),
            "ms_rank_lists": rank_lists, "ms_out_names": files,
        }
    # unified_safetensors of the 2x2 case, safetensors sources
    root = os.path.join(HERE, "unified")
    shutil.rmtree(root, ignore_errors=True)
    src = CASES["2x2_to_1"][0]
    s_path = os.path.join(root, "src_strategy.ckpt")
    os.makedirs(root)
    write_strategy(pb, s_path, src)
    for r in range(4):
        d = os.path.join(root, "src", f"rank_{r}")
        os.makedirs(d)
        items = {n: ms.Parameter(ms.Tensor(np.ascontiguousarray(expected(model[n], src, n, r))),
                                 name=n) for n in SHAPES}
        items["global_step"] = ms.Parameter(ms.Tensor(np.array(42, np.int32)), name="global_step")
        ms.save_checkpoint(items, os.path.join(d, "net-1_1.safetensors"), format="safetensors")
    ms.parallel.unified_safetensors(os.path.join(root, "src"), s_path,
                                    os.path.join(root, "ms_unified"), max_process_num=1)
    got = ms.load_checkpoint(os.path.join(root, "ms_unified", "part0.safetensors"),
                             format="safetensors")
    for n in SHAPES:
        if not np.array_equal(got[n].asnumpy(), model[n]):
            bad.append(f"unified: {n}")
    manifest["unified"] = {"src": {n: spec(*v) for n, v in src.items() if not n.startswith("_")}}
    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    if bad:
        print("MindSpore output differs from the numpy expectation:", bad)
        return 1
    print("ok:", sorted(manifest["cases"]), "+ unified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
