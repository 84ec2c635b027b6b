"""MindCheckpointIO: Lightning's own ModelCheckpoint (save_top_k, save_last) and ckpt_path resume
through MindSpore-format files, equal to an uninterrupted run; files load in MindSpore."""

from __future__ import annotations

import os

import ms_oracle
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")

import mindckpt as ms  # noqa: E402
from mindckpt.errors import AsyncSaveError, FormatError  # noqa: E402
from mindckpt.integrations.lightning import MindCheckpointIO  # noqa: E402
from mindckpt.state import unflatten_state  # noqa: E402


class Net(pl.LightningModule):
    def __init__(self, lr=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(5, 3)
        self.norm = torch.nn.BatchNorm1d(3)  # a buffer (num_batches_tracked: int64) too

    def training_step(self, batch, _i):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.norm(self.layer(x)), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)]


def loader():
    g = np.random.default_rng(0)
    x = torch.from_numpy(g.standard_normal((64, 5)).astype(np.float32))
    y = torch.from_numpy(g.integers(0, 3, 64))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


def fit(directory, max_epochs, io, ckpt_path=None, seed=0):
    torch.manual_seed(seed)
    model = Net()
    cb = pl.callbacks.ModelCheckpoint(dirpath=directory, save_top_k=2, monitor="train_loss",
                                      save_last=True)
    trainer = pl.Trainer(max_epochs=max_epochs, plugins=[io], callbacks=[cb], logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", deterministic=True, num_sanity_val_steps=0)
    trainer.fit(model, loader(), ckpt_path=ckpt_path)
    return model, trainer


@pytest.mark.parametrize("kw", [{}, {"crc_check": True, "async_save": "thread"},
                                {"enc_key": b"k" * 16, "async_save": "process"}],
                         ids=["plain", "crc_async", "encrypted_process"])
def test_resume_with_ckpt_path_equals_uninterrupted(tmp_path, kw):
    ref, _ = fit(str(tmp_path / "ref"), 4, MindCheckpointIO(**kw))
    d = str(tmp_path / "run")
    fit(d, 2, MindCheckpointIO(**kw))
    files = sorted(os.listdir(d))
    assert "last.ckpt" in files and len(files) == 3  # top 2 + last
    resumed, trainer = fit(d, 4, MindCheckpointIO(**kw), ckpt_path=os.path.join(d, "last.ckpt"),
                           seed=123)
    for (k, a), (_k, b) in zip(ref.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    sa = trainer.optimizers[0].state_dict()
    assert trainer.lr_scheduler_configs[0].scheduler.get_last_lr() == [0.05 * 0.25]
    assert sa["state"][0]["step"].item() == 16
    assert len(os.listdir(d)) == 3  # save_top_k held across the restart


def test_dict_round_trip_and_layout(tmp_path):
    io = MindCheckpointIO(crc_check=True)
    fit(str(tmp_path), 1, io)
    path = str(tmp_path / "last.ckpt")
    got = io.load_checkpoint(path)
    assert got["epoch"] == 0 and got["global_step"] == 4 and isinstance(got["global_step"], int)
    assert got["hyper_parameters"] == {"lr": 0.05}
    assert got["state_dict"]["norm.num_batches_tracked"].dtype == torch.int64
    assert isinstance(got["pytorch-lightning_version"], str)
    # plain MindSpore-style names for the weights, the rest under lightning.
    params = ms.load_checkpoint(path, crc_check=True)
    assert list(params)[:2] == ["layer.weight", "layer.bias"]
    assert "lightning.__schema__" in params and "lightning.global_step" in params
    assert unflatten_state(params)["lightning"]["global_step"] == 4
    meta = io.load_checkpoint(path, map_location="cpu")
    assert meta["state_dict"]["layer.weight"].device.type == "cpu"


def test_errors(tmp_path):
    with pytest.raises(NotImplementedError, match="only format='ckpt'"):
        MindCheckpointIO(format="safetensors")
    with pytest.raises(ValueError, match="crc_check=True' cannot be used together"):
        MindCheckpointIO(crc_check=True, enc_key=b"k" * 16)
    io = MindCheckpointIO()
    with pytest.raises(ValueError, match="must end with '.ckpt'"):
        io.save_checkpoint({"state_dict": {}}, str(tmp_path / "x.pt"))
    with pytest.raises(TypeError, match="no pickle"):
        io.save_checkpoint({"state_dict": {}, "hyper_parameters": {"f": object()}},
                           str(tmp_path / "x.ckpt"))
    ms.save_checkpoint({"w": np.zeros(2, np.float32)}, str(tmp_path / "plain.ckpt"))
    with pytest.raises(FormatError, match="not one MindCheckpointIO wrote"):
        io.load_checkpoint(str(tmp_path / "plain.ckpt"))
    io.remove_checkpoint(str(tmp_path / "plain.ckpt"))
    assert not os.path.exists(tmp_path / "plain.ckpt")


def test_async_error_raised_at_teardown(tmp_path, monkeypatch):
    io = MindCheckpointIO(async_save="thread")
    from mindckpt import _api

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    real = _api.plan_save

    def failing_plan(*a, **k):
        job = real(*a, **k)
        job.write = boom
        return job

    monkeypatch.setattr(_api, "plan_save", failing_plan)
    io.save_checkpoint({"state_dict": {"w": torch.zeros(2)}, "epoch": 1}, str(tmp_path / "a.ckpt"))
    with pytest.raises(AsyncSaveError, match="No space left"):
        io.teardown()


@pytest.mark.mindspore
def test_mindspore_loads_lightning_files(tmp_path):
    ms_oracle.require_mindspore()
    model, _ = fit(str(tmp_path), 1, MindCheckpointIO(crc_check=True))
    entries = {e["name"]: e for e in ms_oracle.load(str(tmp_path / "last.ckpt"), crc_check=True)}
    np.testing.assert_array_equal(ms_oracle.to_numpy(entries["layer.weight"]),
                                  model.layer.weight.detach().numpy())
    assert entries["lightning.__schema__"]["kind"] == "str"
    assert entries["lightning.global_step"]["dtype"] == "Int64"
