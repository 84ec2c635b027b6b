"""load_checkpoint_async, ckpt_to_safetensors / safetensors_to_ckpt on files, async_ckpt_thread_status:
the calls of their MindSpore documentation on a small SequentialCell."""
import os
import numpy as np
import mindspore as ms
from mindspore import nn
net = nn.SequentialCell([nn.Dense(3, 2), nn.BatchNorm1d(2)])
os.makedirs("ckpt_dir", exist_ok=True)
ms.save_checkpoint(net, "ckpt_dir/a.ckpt")
ms.save_checkpoint(net, "ckpt_dir/b.ckpt", crc_check=True)
fut = ms.load_checkpoint_async("ckpt_dir/a.ckpt")
pd = fut.result()
print(type(fut).__name__, list(pd))
print(ms.load_param_into_net(nn.SequentialCell([nn.Dense(3, 2), nn.BatchNorm1d(2)]), pd))
ms.ckpt_to_safetensors("ckpt_dir/a.ckpt", "st_dir")
ms.ckpt_to_safetensors("ckpt_dir/b.ckpt", "st_dir")
print(sorted(os.listdir("st_dir")))
ms.safetensors_to_ckpt("st_dir/b.safetensors", "back_dir")
print(sorted(os.listdir("back_dir")))
back = ms.load_checkpoint("back_dir/b.ckpt")
print(list(back), all(np.array_equal(back[k].asnumpy(), pd[k].asnumpy()) for k in pd))
print(ms.async_ckpt_thread_status())
