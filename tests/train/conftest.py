from __future__ import annotations

import numpy as np
import pytest

from mindckpt import async_writer as _async
from mindckpt.errors import AsyncSaveError
from mindckpt.train.callback import InternalCallbackParam, RunContext


@pytest.fixture(autouse=True)
def _no_async_leftovers():
    yield
    try:
        _async.wait()
    except AsyncSaveError:
        pass


def make_net(seed=0):
    """A small mindckpt Cell with two parameters."""
    import mindckpt as ms
    from mindckpt import nn

    net = nn.Cell()
    rng = np.random.default_rng(seed)
    net.weight = ms.Parameter(
        ms.Tensor(rng.standard_normal((3, 4)).astype(np.float32)), name="weight"
    )
    net.bias = ms.Parameter(ms.Tensor(np.zeros(3, np.float32)), name="bias")
    return net


class Driver:
    """Plays Model.train's part: fills cb_params and calls the hooks."""

    def __init__(self, callbacks, network=None, batch=5):
        self.callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        self.network = network if network is not None else make_net()
        self.params = InternalCallbackParam(
            train_network=self.network,
            network=self.network,
            batch_num=batch,
            epoch_num=0,
            cur_epoch_num=0,
            cur_step_num=0,
        )
        self.rc = RunContext(self.params)

    def call(self, hook):
        for cb in self.callbacks:
            getattr(cb, hook)(self.rc)

    def run(self, epochs=2, initial_epoch=0, stop_at=None, after_step=None, end=True):
        p = self.params
        p.epoch_num = epochs
        p.cur_step_num = 0
        self.call("on_train_begin")
        for epoch in range(initial_epoch + 1, epochs + 1):
            p.cur_epoch_num = epoch
            self.call("on_train_epoch_begin")
            for _ in range(p.batch_num):
                p.cur_step_num += 1
                self.call("on_train_step_begin")
                self.call("on_train_step_end")
                if after_step:
                    after_step(p.cur_step_num)
                if stop_at == p.cur_step_num:
                    self.rc.request_stop()
                if self.rc.get_stop_requested():
                    break
            self.call("on_train_epoch_end")
            if self.rc.get_stop_requested():
                break
        if end:
            self.call("on_train_end")
