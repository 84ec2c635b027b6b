"""Drive ModelCheckpoint like Model.train does, with either library; used by test_parity.py.

    python _ckpt_scenarios.py mindspore|mindckpt OUT_DIR

The same code runs against ``mindspore`` and ``mindckpt`` (the point of the API), writing one
sub-directory per scenario. The weights change at every step so each file shows its step.
"""

from __future__ import annotations

import os
import sys

import numpy as np

LIB, OUT = sys.argv[1], sys.argv[2]
if LIB == "mindspore":
    import mindspore as ms
    from mindspore import nn
    from mindspore.train import CheckpointConfig, ModelCheckpoint, RunContext
    from mindspore.train.callback._callback import InternalCallbackParam
else:
    import mindckpt as ms
    from mindckpt import nn
    from mindckpt.train import CheckpointConfig, ModelCheckpoint, RunContext
    from mindckpt.train.callback import InternalCallbackParam


class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.weight = ms.Parameter(ms.Tensor(np.zeros((2, 3), np.float32)), name="weight")
        self.bias = ms.Parameter(ms.Tensor(np.zeros(3, np.float32)), name="bias")


def drive(cb, epochs=2, batch=5, initial_epoch=0, stop_at=None, net=None):
    net = net or Net()
    p = InternalCallbackParam()
    p.train_network = net
    p.network = net
    p.batch_num = batch
    p.epoch_num = epochs
    p.cur_epoch_num = initial_epoch
    p.cur_step_num = 0
    rc = RunContext(p)
    cb.on_train_begin(rc)
    for epoch in range(initial_epoch + 1, epochs + 1):
        p.cur_epoch_num = epoch
        cb.on_train_epoch_begin(rc)
        for _ in range(batch):
            p.cur_step_num += 1
            step = p.cur_step_num
            net.weight.set_data(ms.Tensor(np.full((2, 3), step, np.float32)))
            net.bias.set_data(ms.Tensor(np.arange(3, dtype=np.float32) * epoch))
            cb.on_train_step_begin(rc)
            cb.on_train_step_end(rc)
            if stop_at == step:
                rc.request_stop()
            if rc.get_stop_requested():
                break
        cb.on_train_epoch_end(rc)
        if rc.get_stop_requested():
            break
    cb.on_train_end(rc)


def d(name):
    path = os.path.join(OUT, name)
    os.makedirs(path, exist_ok=True)
    return path


SCENARIOS = {
    "steps2": lambda: drive(
        ModelCheckpoint("m", d("steps2"), CheckpointConfig(2, keep_checkpoint_max=100))
    ),
    "steps3": lambda: drive(
        ModelCheckpoint("m", d("steps3"), CheckpointConfig(3, keep_checkpoint_max=100))
    ),
    "steps7": lambda: drive(
        ModelCheckpoint("m", d("steps7"), CheckpointConfig(7, keep_checkpoint_max=100))
    ),
    "steps100": lambda: drive(ModelCheckpoint("m", d("steps100"), CheckpointConfig(100))),
    "never": lambda: drive(ModelCheckpoint("m", d("never"), CheckpointConfig(0, 0, 5))),
    "initial_epoch": lambda: drive(
        ModelCheckpoint("m", d("initial_epoch"), CheckpointConfig(2, keep_checkpoint_max=100)),
        epochs=3,
        initial_epoch=1,
    ),
    "stop": lambda: drive(
        ModelCheckpoint("m", d("stop"), CheckpointConfig(3, keep_checkpoint_max=100)), stop_at=4
    ),
    "keep2": lambda: drive(
        ModelCheckpoint("k", d("keep2"), CheckpointConfig(1, keep_checkpoint_max=2))
    ),
    "keep3_async": lambda: drive(
        ModelCheckpoint(
            "k", d("keep3_async"), CheckpointConfig(1, keep_checkpoint_max=3, async_save=True)
        )
    ),
    "append": lambda: drive(
        ModelCheckpoint(
            "a",
            d("append"),
            CheckpointConfig(
                3,
                keep_checkpoint_max=100,
                append_info=[
                    "epoch_num",
                    "step_num",
                    {"lr": 0.5, "tag": "x", "flag": True, "n": 7},
                ],
            ),
        )
    ),
    "append_offset": lambda: drive(
        ModelCheckpoint(
            "a",
            d("append_offset"),
            CheckpointConfig(
                append_info=["epoch_num", "step_num", {"epoch_num": 5, "step_num": 50}]
            ),
        ),
        epochs=1,
        batch=2,
    ),
    "crc": lambda: drive(ModelCheckpoint("c", d("crc"), CheckpointConfig(5, crc_check=True))),
    "safetensors": lambda: drive(
        ModelCheckpoint(
            "s", d("safetensors"), CheckpointConfig(2, keep_checkpoint_max=2, format="safetensors")
        )
    ),
    "callable_prefix": lambda: drive(
        ModelCheckpoint(
            lambda p: f"fn_e{p.cur_epoch_num}", d("callable_prefix"), CheckpointConfig(2)
        )
    ),
}


def three_runs():
    path = d("three_runs")
    for _ in range(3):
        drive(ModelCheckpoint("run", path, CheckpointConfig(5)), epochs=1)


SCENARIOS["three_runs"] = three_runs

if __name__ == "__main__":
    only = sys.argv[3:] or list(SCENARIOS)
    for name in only:
        SCENARIOS[name]()
    if LIB == "mindspore":
        from mindspore.train.serialization import _wait_async_thread_save_ckpt

        _wait_async_thread_save_ckpt()
    print("DONE")
