"""``mindckpt convert SRC DST``: between .ckpt and safetensors, from torch.save and HF shards."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import (
    HelpFormatter,
    UsageError,
    add_common,
    add_key_options,
    emit_json,
    human,
    key_of,
)
from ._progress import bar

HELP = "convert between .ckpt and safetensors; read torch.save files and HF sharded checkpoints"
DESCRIPTION = """\
Write the entries of SRC to DST, exactly at the path given (no suffix is added), atomically: a
failure leaves DST as it was. The path really written is printed.

SRC: a .ckpt (plain, CRC, encrypted) or .safetensors file, a torch.save file (.pt/.pth/.bin,
read with torch.load(weights_only=True): never arbitrary unpickling), or a Hugging Face sharded
checkpoint (its directory or its model.safetensors.index.json).
DST: .ckpt or .safetensors (or --to). A CRC stored in SRC is checked first: a damaged source is
refused and nothing is written. str entries are kept in .ckpt and dropped, with a note, for
safetensors (which cannot hold them).

examples:
  mindckpt convert net.ckpt net.safetensors
  mindckpt convert model.pt net.ckpt --crc
  mindckpt convert ./llama-hf/ llama.safetensors --drop 'lm_head.*'
  mindckpt convert plain.ckpt secret.ckpt --out-key @new.key
  mindckpt convert secret.ckpt open.safetensors --key @old.key --rename 'model.*=*'
"""


def register(sub: Any) -> None:
    p = sub.add_parser("convert", help=HELP, description=DESCRIPTION,
                       formatter_class=HelpFormatter)
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST")
    p.add_argument("--from", dest="src_format", choices=["ckpt", "safetensors", "torch", "hf"],
                   help="format of SRC (default: from its name, then its content)")
    p.add_argument("--to", dest="dst_format", choices=["ckpt", "safetensors"],
                   help="format of DST (default: from its suffix)")
    add_key_options(p, out=True, what="SRC")
    p.add_argument("--crc", action="store_true",
                   help="give DST a CRC (.ckpt trailer or safetensors crc_num)")
    p.add_argument("--drop", action="append", default=[], metavar="GLOB",
                   help="leave out entries whose name matches GLOB (repeatable)")
    p.add_argument("--rename", action="append", default=[], metavar="OLD=NEW",
                   help="rename entry OLD to NEW; 'OLD*=NEW*' renames a prefix (repeatable)")
    p.add_argument("-f", "--force", action="store_true", help="replace DST if it exists")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_common(p)
    p.set_defaults(func=run)


def _renames(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise UsageError(f"--rename takes OLD=NEW (or 'OLD*=NEW*' for a prefix), got {pair!r}")
        if old.endswith("*") != new.endswith("*"):
            raise UsageError(f"--rename {pair!r}: a prefix rename needs '*' at the end of both "
                             "sides ('model.*=net.*'), or of neither")
        out[old] = new
    return out


def run(args: argparse.Namespace) -> int:
    from mindckpt.tools import convert_checkpoint
    from mindckpt.verify import sniff_checkpoint

    key = key_of(args)
    out_key = key_of(args, "out_key")
    if key is None and args.src_format in (None, "ckpt") and "://" not in args.src:
        from mindckpt.tools import source_format

        if source_format(args.src) in ("ckpt", ""):
            _fmt, cipher = sniff_checkpoint(args.src)
            if cipher is not None:
                raise UsageError(f"{args.src} is encrypted with {cipher}: give its key with "
                                 "--key HEX or --key @KEYFILE")
    with bar(f"convert {args.src}", quiet=args.quiet) as progress:
        r = convert_checkpoint(
            args.src, args.dst, src_format=args.src_format, dst_format=args.dst_format,
            dec_key=key, dec_mode=args.mode, enc_key=out_key,
            enc_mode=args.out_mode, crc_check=args.crc, drop=args.drop,
            rename=_renames(args.rename), overwrite=args.force, progress=progress)
    if args.json:
        emit_json({"path": r.path, "format": r.format, "source_format": r.source_format,
                   "entries": r.entries, "bytes_written": r.bytes_written,
                   "encryption": args.out_mode if out_key is not None else None,
                   "crc": args.crc, "source_crc": r.source_crc,
                   "dropped": [{"name": n, "reason": why} for n, why in r.dropped],
                   "renamed": [{"from": a, "to": b} for a, b in r.renamed]})
        return 0
    if not args.quiet:
        for name, why in r.dropped:
            print(f"note: dropped '{name}': {why}", file=sys.stderr)
    extra = []
    if r.source_crc == "ok":
        extra.append("source CRC ok")
    if out_key is not None:
        extra.append(args.out_mode)
    if args.crc:
        extra.append("with CRC")
    if r.dropped:
        extra.append(f"{len(r.dropped)} dropped")
    print(f"wrote {r.path} ({r.format}, {r.entries} entries, {human(r.bytes_written)}"
          + "".join(f", {x}" for x in extra) + ")")
    return 0
