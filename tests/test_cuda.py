"""CUDA tensors: saved without staging the whole model on the host; async snapshots copy once.

Skipped without a CUDA device (CI has none); run on a GPU machine.
"""

from __future__ import annotations

import numpy as np
import pytest

import mindckpt as ms

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _model():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Linear(32, 8)).cuda()
    m[1].to(torch.bfloat16)
    return m


@pytest.mark.parametrize("async_save", [False, "thread", "process"])
def test_cuda_module_round_trip(tmp_cwd, async_save):
    m = _model()
    want = {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}
    ms.save_checkpoint(m, "m.ckpt", async_save=async_save)
    with torch.no_grad():  # mutate right after the call: the snapshot must not see it
        for p in m.parameters():
            p.add_(1)
    ms.async_writer.wait()
    d = ms.load_checkpoint("m.ckpt")
    for k, v in want.items():
        got = d[k].asnumpy()
        ref = v.view(torch.int16).numpy() if v.dtype == torch.bfloat16 else v.numpy()
        assert np.array_equal(got.view(ref.dtype) if v.dtype == torch.bfloat16 else got, ref), k
    m2 = _model()
    assert ms.load_param_into_net(m2, d) == ([], [])
    for k, v in want.items():
        assert torch.equal(m2.state_dict()[k].cpu(), v)
        assert m2.state_dict()[k].is_cuda


def test_cuda_safetensors(tmp_cwd):
    m = _model()
    ms.save_checkpoint(m, "m", format="safetensors", crc_check=True)
    d = ms.load_checkpoint("m.safetensors", format="safetensors", crc_check=True)
    assert sorted(d) == sorted(m.state_dict())
