"""Fork server for test_crash.py: imports mindckpt once, then forks one saver per request.

Protocol (lines on stdin/stdout): ``run <json>`` -> ``pid <n>`` (the child is the leader of its
own process group, so that killing the group also kills a "process" async writer);
``reap <n>`` -> ``status <waitpid status>``.  The child saves and exits with 0.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

import mindckpt as ms
from mindckpt import async_writer
from mindckpt.codecs import crypto as _crypto  # noqa: F401  (imported once, not per child)
from mindckpt import nn
from mindckpt.train import CheckpointConfig, ModelCheckpoint, RunContext
from mindckpt.train.callback import InternalCallbackParam

sys.path.insert(0, os.path.dirname(__file__))
from kinds import KINDS, params  # noqa: E402


def save(spec: dict) -> None:
    kw = dict(KINDS[spec["kind"]][0])
    mode = spec["mode"]
    if mode == "modelcheckpoint":
        return drive(spec, kw)
    if mode != "sync":
        kw["async_save"] = True if mode == "thread" else "process"
    ms.save_checkpoint(params(spec["gen"], size=spec["size"]), spec["path"], **kw)
    if mode != "sync":
        async_writer.wait()


class Net(nn.Cell):
    def __init__(self, gen: int):
        super().__init__()
        for name, p in params(gen).items():
            setattr(self, name.replace(".", "_"), ms.Parameter(p, name=name))


def drive(spec: dict, kw: dict) -> None:
    cfg = CheckpointConfig(save_checkpoint_steps=1, keep_checkpoint_max=spec["keep"],
                           **{k: v for k, v in kw.items() if k != "format"},
                           **({"format": kw["format"]} if "format" in kw else {}))
    cb = ModelCheckpoint(spec["prefix"], spec["dir"], cfg)
    net = Net(1)
    p = InternalCallbackParam()
    p.train_network = p.network = net
    p.batch_num = spec["steps"]
    p.epoch_num = 1
    p.cur_epoch_num = 1
    p.cur_step_num = 0
    rc = RunContext(p)
    cb.on_train_begin(rc)
    cb.on_train_epoch_begin(rc)
    for step in range(1, spec["steps"] + 1):
        p.cur_step_num = step
        for prm in net.get_parameters():
            prm.set_data(ms.Tensor(np.full(prm.shape, step, prm.asnumpy().dtype)))
        cb.on_train_step_begin(rc)
        cb.on_train_step_end(rc)
    cb.on_train_epoch_end(rc)
    cb.on_train_end(rc)
    async_writer.wait()


def main() -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "run":
            spec = json.loads(arg)
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    os.setpgid(0, 0)
                    save(spec)
                except BaseException as exc:  # noqa: BLE001
                    print(f"child failed: {exc!r}", file=sys.stderr, flush=True)
                    code = 3
                os._exit(code)
            print(f"pid {pid}", flush=True)
        elif cmd == "reap":
            _, status = os.waitpid(int(arg), 0)
            print(f"status {status}", flush=True)
        elif cmd == "quit":
            return


if __name__ == "__main__":
    main()
