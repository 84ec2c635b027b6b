"""``mindckpt diff A B``: names, dtypes, shapes and values, streamed."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import (
    EXIT_BAD,
    EXIT_OK,
    HelpFormatter,
    UsageError,
    add_common,
    emit_json,
    parse_key,
)
from ._progress import bar

HELP = "compare two checkpoints (names, dtypes, shapes, values); exit 1 if they differ"
DESCRIPTION = """\
Compare checkpoints A and B entry by entry: names present in one only, dtype or shape
differences, and for the others the values: how many elements differ, the largest absolute
difference and the largest relative difference |a-b|/max(|a|,|b|). NaN equals NaN. Tensors are
read piece by piece, so memory stays small whatever the files' sizes. A .ckpt and a safetensors
file compare by content.

exit status: 0 same, 1 different, 2 wrong options or a missing file

examples:
  mindckpt diff before.ckpt after.ckpt
  mindckpt diff net.ckpt net.safetensors --atol 1e-6 --json
  mindckpt diff a.ckpt b.ckpt --key-b @b.key
"""


def register(sub: Any) -> None:
    p = sub.add_parser("diff", help=HELP, description=DESCRIPTION, formatter_class=HelpFormatter)
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--key", metavar="HEX|@FILE",
                   help="key of both A and B when both are encrypted with the same key")
    for side in ("a", "b"):
        p.add_argument(f"--key-{side}", metavar="HEX|@FILE",
                       help=f"key of {side.upper()} (hex digits, or @FILE)")
        p.add_argument(f"--mode-{side}", metavar="MODE",
                       choices=["AES-GCM", "AES-CBC", "SM4-CBC"],
                       help=f"override the cipher read from {side.upper()}")
    p.add_argument("--atol", type=float, default=0.0,
                   help="an element differs when |a-b| > atol + rtol*|b|")
    p.add_argument("--rtol", type=float, default=0.0, help="see --atol")
    p.add_argument("--names-only", action="store_true",
                   help="compare names, dtypes and shapes only (reads headers only)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_common(p)
    p.set_defaults(func=run)


def _key(args: argparse.Namespace, side: str) -> bytes | None:
    own = getattr(args, f"key_{side}")
    if own is not None:
        return parse_key(own, f"--key-{side}")
    return parse_key(args.key, "--key")


def _key_for(path: str, key: bytes | None, side: str) -> bytes | None:
    from mindckpt.verify import sniff_checkpoint

    _fmt, cipher = sniff_checkpoint(path)
    if cipher is None:
        return None  # --key given for the other, encrypted side
    if key is None:
        raise UsageError(f"{path} is encrypted with {cipher}: give its key with --key-{side} "
                         "HEX or --key-{side} @KEYFILE".replace("{side}", side))
    return key


def _num(x: float) -> Any:
    return x if x == x and x not in (float("inf"), float("-inf")) else str(x)


def run(args: argparse.Namespace) -> int:
    from mindckpt.diff import diff_checkpoints

    if args.atol < 0 or args.rtol < 0:
        raise UsageError("--atol and --rtol must be >= 0")
    ka = _key_for(args.a, _key(args, "a"), "a")
    kb = _key_for(args.b, _key(args, "b"), "b")
    with bar("diff", quiet=args.quiet) as progress:
        d = diff_checkpoints(args.a, args.b, dec_key_a=ka, dec_mode_a=args.mode_a, dec_key_b=kb,
                             dec_mode_b=args.mode_b, atol=args.atol, rtol=args.rtol,
                             values=not args.names_only, progress=progress)
    if args.json:
        emit_json({
            "a": args.a, "b": args.b, "same": d.same,
            "only_a": d.only_a, "only_b": d.only_b,
            "changed": {k: {"a": v[0], "b": v[1]} for k, v in d.changed.items()},
            "compared": len(d.values),
            "differing": [{"name": v.name, "numel": v.numel, "n_diff": v.n_diff,
                           "max_abs": _num(v.max_abs), "max_rel": _num(v.max_rel)}
                          for v in d.differing],
        })
        return EXIT_OK if d.same else EXIT_BAD
    for n in d.only_a:
        print(f"only in A: {n}")
    for n in d.only_b:
        print(f"only in B: {n}")
    for n, (x, y) in d.changed.items():
        print(f"changed:   {n}: {x} -> {y}")
    for v in d.differing:
        print(f"values:    {v.name}: {v.n_diff} of {v.numel} elements differ, max abs "
              f"{v.max_abs:.6g}, max rel {v.max_rel:.6g}")
    what = "names, dtypes and shapes" if args.names_only else f"{len(d.values)} entries compared"
    if d.same:
        print(f"same: {what}, no differences")
    else:
        print(f"different: {len(d.only_a)} only in A, {len(d.only_b)} only in B, "
              f"{len(d.changed)} changed dtype/shape, {len(d.differing)} with different values "
              f"({what})")
    return EXIT_OK if d.same else EXIT_BAD
