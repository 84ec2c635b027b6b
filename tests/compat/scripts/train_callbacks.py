"""Training-callback example: CheckpointConfig + ModelCheckpoint + a custom Callback driven by a
hand-written loop through RunContext (MindSpore's callback protocol), then resume by loading."""
import os
import numpy as np
import mindspore
from mindspore import nn, context
from mindspore.train.callback import ModelCheckpoint, CheckpointConfig, Callback, RunContext

context.set_context(mode=context.PYNATIVE_MODE, device_target="CPU")

class AttrDict(dict):
    __getattr__ = dict.__getitem__
    __setattr__ = dict.__setitem__

class StepLogger(Callback):
    def __init__(self, stop_at):
        super().__init__()
        self.stop_at = stop_at
    def on_train_step_end(self, run_context):
        cb = run_context.original_args()
        print("step", cb.cur_epoch_num, cb.cur_step_num)
        if cb.cur_step_num == self.stop_at:
            run_context.request_stop()
    def on_train_epoch_end(self, run_context):
        print("epoch end", run_context.original_args().cur_epoch_num)

net = nn.SequentialCell([nn.Dense(4, 3), nn.BatchNorm1d(3), nn.Dense(3, 2)])
config = CheckpointConfig(save_checkpoint_steps=2, keep_checkpoint_max=2, append_info=["epoch_num", "step_num"])
ckpt = ModelCheckpoint(prefix="net", directory="./ckpts", config=config)
cbs = [ckpt, StepLogger(stop_at=5)]
cb_params = AttrDict(train_network=net, epoch_num=3, batch_num=2, cur_epoch_num=0, cur_step_num=0)
rc = RunContext(cb_params)


def fire(hook):
    for c in cbs:
        getattr(c, hook)(rc)


fire("on_train_begin")
for epoch in range(1, 4):
    cb_params.cur_epoch_num = epoch
    fire("on_train_epoch_begin")
    for _ in range(2):
        cb_params.cur_step_num += 1
        fire("on_train_step_begin")
        fire("on_train_step_end")
        if rc.get_stop_requested():
            break
    fire("on_train_epoch_end")
    if rc.get_stop_requested():
        break
fire("on_train_end")
print(sorted(os.listdir("./ckpts")))
print(os.path.basename(ckpt.latest_ckpt_file_name))
params = mindspore.load_checkpoint(ckpt.latest_ckpt_file_name)
print(list(params))
print(params["epoch_num"].asnumpy().item(), params["step_num"].asnumpy().item())
new = nn.SequentialCell([nn.Dense(4, 3), nn.BatchNorm1d(3), nn.Dense(3, 2)])
print(mindspore.load_param_into_net(new, params))
print(np.array_equal(new[0].weight.asnumpy(), net[0].weight.asnumpy()))
