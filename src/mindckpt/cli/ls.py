"""``mindckpt ls DIR``: the checkpoints of a ModelCheckpoint directory."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ._common import HelpFormatter, add_common, emit_json, human

HELP = "list the checkpoints of a ModelCheckpoint directory, newest last, and which is latest"
DESCRIPTION = """\
List the checkpoints ModelCheckpoint wrote in DIR ({prefix}[_N]-{epoch}_{step}.ckpt or
.safetensors, and {prefix}-{epoch}_{step}_breakpoint.ckpt): epoch, step, size, modification
time, and whether each is complete (its headers are read; an encrypted file cannot be checked
without its key and says so). Oldest first, newest last; '*' marks the latest complete regular
checkpoint, the one to resume from.

examples:
  mindckpt ls ckpts/
  mindckpt ls ckpts/ --prefix mlp --json
"""


def register(sub: Any) -> None:
    p = sub.add_parser("ls", help=HELP, description=DESCRIPTION, formatter_class=HelpFormatter)
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--prefix", help="only this prefix (and its prefix_N reruns)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mindckpt.listing import list_checkpoints

    found = list_checkpoints(args.dir, args.prefix)
    latest = next((c for c in found if c.latest), None)
    if args.json:
        emit_json({
            "directory": args.dir,
            "latest": latest.path if latest else None,
            "checkpoints": [
                {"name": c.name, "path": c.path, "prefix": c.prefix, "epoch": c.epoch,
                 "step": c.step, "breakpoint": c.breakpoint, "format": c.format,
                 "size": c.size, "mtime": c.mtime, "complete": c.complete,
                 "status": c.status, "latest": c.latest}
                for c in found
            ],
        })
        return 0
    if not found:
        print(f"no checkpoints in {args.dir}")
        return 0
    rows = [("", "NAME", "EPOCH", "STEP", "SIZE", "MODIFIED", "STATUS")]
    for c in found:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.mtime))
        status = c.status + (" (breakpoint)" if c.breakpoint else "")
        rows.append(("*" if c.latest else "", c.name, str(c.epoch), str(c.step), human(c.size),
                     when, status))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for r in rows:
        print("  ".join(f"{v:<{w}}" for v, w in zip(r[:6], widths, strict=True)) + "  " + r[6])
    print(f"latest: {latest.name if latest else 'none (no complete regular checkpoint)'}")
    return 0
