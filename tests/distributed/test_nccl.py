"""The same save/load paths with CUDA tensors: NCCL at world size 1, and several ranks sharing
one device (NCCL refuses two ranks on one GPU, so those ranks run gloo with CUDA local shards;
checkpoint traffic always runs on mindckpt's own gloo group).  Skipped without a GPU."""

from __future__ import annotations

import os

import numpy as np
import pytest

import mindckpt
from _harness import np_of, run_ranks
from _zoo import full_state, mesh_shape, placements, zoo

torch = pytest.importorskip("torch")
# the ranks are forked: ask NVML whether there is a GPU, so that the parent never initialises
# CUDA (a CUDA context does not survive fork)
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _cuda_state(world, kind, zeros=False):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    from mindckpt.parallel.dtensor import layout_from_placements

    shape = mesh_shape(world, kind)
    names = ("x",) if kind == "1d" else ("dp", "tp")
    mesh = init_device_mesh("cuda", shape, mesh_dim_names=names)
    rank = torch.distributed.get_rank()
    out = {}
    for name, full_shape, dtype, spec in zoo(kind):
        full = full_state([(name, full_shape, dtype, spec)])[name]
        lay = layout_from_placements(shape, placements(spec), full_shape, name=name)
        local = full[tuple(slice(a, b) for a, b in lay.box(rank))].contiguous().cuda()
        if zeros:
            local.zero_()
        out[name] = DTensor.from_local(local, mesh, placements(spec), run_check=False,
                                       shape=full.shape, stride=full.stride())
    out["step"] = torch.tensor(0 if zeros else 7, device="cuda")
    return out


def _roundtrip(rank, world, d, kind):
    from mindckpt.parallel.load import load_distributed
    from mindckpt.parallel.save import save_distributed

    torch.cuda.set_device(0)
    sd = _cuda_state(world, kind)
    save_distributed(sd, f"{d}/int", writer_rank=0)
    save_distributed(sd, f"{d}/sliced", integrated_save=False)
    target = _cuda_state(world, kind, zeros=True)
    load_distributed(f"{d}/sliced", target)
    return {n: np_of(v.to_local().cpu() if hasattr(v, "to_local") else v.cpu())
            for n, v in target.items()}, {n: np_of(v.to_local().cpu()
                                                   if hasattr(v, "to_local") else v.cpu())
                                          for n, v in sd.items()}


@pytest.mark.parametrize("world,kind,backend", [(1, "1d", "nccl"), (2, "1d", "gloo"),
                                                (4, "2d", "gloo")])
def test_cuda_shards_roundtrip(tmp_path, world, kind, backend):
    out = run_ranks(_roundtrip, world, tmp_path, str(tmp_path), kind, backend=backend)
    for loaded, saved in out:
        for n in saved:
            np.testing.assert_array_equal(loaded[n], saved[n], err_msg=n)
    got = mindckpt.load_checkpoint(str(tmp_path / "int.ckpt"))
    for name, t in full_state(zoo(kind)).items():
        np.testing.assert_array_equal(np.asarray(got[name].asnumpy()), np_of(t))
