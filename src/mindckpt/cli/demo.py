"""``mindckpt demo``: MindSpore's documentation examples, then the training demo."""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

import numpy as np

from ._common import HelpFormatter

HELP = "run MindSpore's save_checkpoint examples and a train/crash/resume demo"
DESCRIPTION = """\
First the two examples of MindSpore's save_checkpoint documentation, verbatim, on LeNet5;
then a small PyTorch MLP trained with ModelCheckpoint (async saves, keep_checkpoint_max=3,
exception_save=True) that crashes itself, resumes from the latest checkpoint and checks that the
resumed weights equal those of an uninterrupted run. Needs torch.
"""


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help=HELP, description=DESCRIPTION, formatter_class=HelpFormatter)
    p.add_argument("--dir", help="where to write (default: a new temporary directory)")
    p.add_argument("--debug", action="store_true", help="on an error, print the traceback")
    p.set_defaults(func=run, quiet=False)


def seed_examples(workdir: str) -> None:
    """The two examples of MindSpore's save_checkpoint docs, run verbatim."""
    import mindckpt as ms
    from mindckpt.examples import LeNet5

    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        net = LeNet5()
        ms.save_checkpoint(net, "./lenet.ckpt",
                           choice_func=lambda x: x.startswith("conv") and not x.startswith("conv1"))
        param_dict1 = ms.load_checkpoint("./lenet.ckpt")
        print(param_dict1)
        params_list = net.trainable_params()
        ms.save_checkpoint(params_list, "./lenet_list.ckpt",
                           choice_func=lambda x: x.startswith("conv") and not x.startswith("conv2"))
        param_dict2 = ms.load_checkpoint("./lenet_list.ckpt")
        print(param_dict2)
        ms.save_checkpoint(param_dict2, "./lenet_dict.ckpt")
        param_dict3 = ms.load_checkpoint("./lenet_dict.ckpt")
        print(param_dict3)
        # and a whole-network round trip into a fresh LeNet5
        ms.save_checkpoint(net, "./lenet_full.ckpt", crc_check=True,
                           append_dict={"epoch_num": 1, "lr": 0.01})
        fresh = LeNet5()
        loaded = ms.load_checkpoint("./lenet_full.ckpt", crc_check=True)
        print("load_param_into_net ->", ms.load_param_into_net(fresh, loaded))
        same = all(np.array_equal(a.asnumpy(), b.asnumpy())
                   for a, b in zip(net.get_parameters(), fresh.get_parameters(), strict=False))
        print(f"reloaded LeNet5 equals the saved one: {same}")
    finally:
        os.chdir(cwd)


def run(args: argparse.Namespace) -> int:
    workdir = args.dir or tempfile.mkdtemp(prefix="mindckpt-demo-")
    os.makedirs(workdir, exist_ok=True)
    print(f"== seed examples (LeNet5), files in {workdir}")
    seed_examples(workdir)
    from mindckpt import demo as training_demo

    print("\n== training loop with ModelCheckpoint, async saves, a crash and a resume")
    return int(training_demo.main(["--dir", os.path.join(workdir, "train")]) or 0)
