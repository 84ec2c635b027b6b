"""The ``mindckpt`` command: ``demo``, ``inspect``, ``convert``.  Calls only the public API."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence

import numpy as np

from . import _api


def _seed_demo(workdir: str) -> None:
    """The two seed examples of MindSpore's save_checkpoint docs, run verbatim."""
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


def cmd_demo(args: argparse.Namespace) -> int:
    workdir = args.dir or tempfile.mkdtemp(prefix="mindckpt-demo-")
    os.makedirs(workdir, exist_ok=True)
    print(f"== seed examples (LeNet5), files in {workdir}")
    _seed_demo(workdir)
    from . import demo as training_demo

    print("\n== training loop with ModelCheckpoint, async saves, a crash and a resume")
    return int(training_demo.main(["--dir", os.path.join(workdir, "train")]) or 0)


def cmd_inspect(args: argparse.Namespace) -> int:
    fmt = "safetensors" if args.file.endswith("safetensors") else "ckpt"
    key = bytes.fromhex(args.key) if args.key else None
    d = _api.load_checkpoint(args.file, dec_key=key, dec_mode=args.mode, crc_check=args.crc,
                             format=fmt)
    total = 0
    for name, v in d.items():
        if isinstance(v, str):
            print(f"{name}\tstr\t{v!r}")
        else:
            total += v.nbytes
            print(f"{name}\t{v.dtype}\t{v.shape}")
    print(f"{len(d)} entries, {total} bytes of tensor data")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    src_fmt = "safetensors" if args.src.endswith("safetensors") else "ckpt"
    dst_fmt = "safetensors" if args.dst.endswith("safetensors") else "ckpt"
    d = _api.load_checkpoint(args.src, format=src_fmt)
    _api.save_checkpoint(d, args.dst, format=dst_fmt, crc_check=args.crc)
    print(f"wrote {args.dst} ({len(d)} entries)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mindckpt", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="run the seed examples and the training demo")
    d.add_argument("--dir", help="where to write (default: a new temporary directory)")
    d.set_defaults(func=cmd_demo)
    i = sub.add_parser("inspect", help="list a checkpoint's entries")
    i.add_argument("file")
    i.add_argument("--key", help="decryption key as hex")
    i.add_argument("--mode", default="AES-GCM")
    i.add_argument("--crc", action="store_true", help="verify the CRC trailer")
    i.set_defaults(func=cmd_inspect)
    c = sub.add_parser("convert", help="convert between .ckpt and .safetensors")
    c.add_argument("src")
    c.add_argument("dst")
    c.add_argument("--crc", action="store_true")
    c.set_defaults(func=cmd_convert)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as e:
        print(f"mindckpt: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
