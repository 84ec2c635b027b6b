"""``mindckpt verify FILE...``: check files completely, one line each."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._common import (
    EXIT_BAD,
    EXIT_OK,
    HelpFormatter,
    add_common,
    add_key_options,
    emit_json,
    key_of,
    translate,
)
from ._progress import bar

HELP = "check files completely (structure, lengths, CRC, GCM tags, offsets); exit 1 if any is bad"
DESCRIPTION = """\
Check each FILE as completely as its format allows, streaming it once without keeping tensors
in memory: the structure and every length against its shape, the CRC trailer (.ckpt) or crc_num
(safetensors) when present, every AES-GCM tag and the block order (or the CBC padding), and
the safetensors offsets. A plain file without a CRC can only be checked for structure and
lengths; the line says so.

One line per file: OK or BAD and why. --key is used for the encrypted files among FILE.

exit status: 0 all good, 1 some file is bad (or missing), 2 wrong options

examples:
  mindckpt verify ckpts/*.ckpt
  mindckpt verify secret.ckpt --key @key.hex --json
"""


def register(sub: Any) -> None:
    p = sub.add_parser("verify", help=HELP, description=DESCRIPTION,
                       formatter_class=HelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE", help=".ckpt or .safetensors files")
    add_key_options(p, what="the encrypted files")
    p.add_argument("--json", action="store_true", help="print JSON (a list, one object per file)")
    add_common(p)
    p.set_defaults(func=run)


def _one(path: str, key: bytes | None, args: argparse.Namespace) -> dict[str, Any]:
    from mindckpt import CheckpointError
    from mindckpt.verify import sniff_checkpoint, verify_checkpoint

    try:
        _fmt, cipher = sniff_checkpoint(path)
        if cipher is not None and key is None:
            return {"path": path, "ok": False, "encryption": cipher,
                    "error": f"{path} is encrypted with {cipher}: give its key with --key HEX "
                             "or --key @KEYFILE to verify it",
                    "error_type": "DecryptionError"}
        with bar(f"verify {path}", quiet=args.quiet) as progress:
            r = verify_checkpoint(path, dec_key=key if cipher else None, dec_mode=args.mode,
                                  progress=progress)
    except (CheckpointError, OSError, ValueError, TypeError) as e:
        return {"path": path, "ok": False, "error": translate(str(e)),
                "error_type": type(e).__name__}
    return {"path": path, "ok": True, "format": r.format, "encryption": r.cipher,
            "file_size": r.file_size, "entries": r.entries, "crc": r.crc,
            "authenticated": r.authenticated, "checks": r.checks}


def run(args: argparse.Namespace) -> int:
    key = key_of(args)
    results = []
    for path in args.files:
        res = _one(path, key, args)
        results.append(res)
        if args.json:
            continue
        if res["ok"]:
            crc = {"ok": "CRC ok", "absent": "no CRC"}[res["crc"]]
            enc = f", {res['encryption']}" + (" tags ok" if res["authenticated"] else "") \
                if res["encryption"] else ""
            print(f"OK   {path}  ({res['format']}, {res['entries']} entries, {crc}{enc})")
        else:
            print(f"BAD  {path}: {res['error']}")
        sys.stdout.flush()
    if args.json:
        emit_json(results)
    return EXIT_OK if all(r["ok"] for r in results) else EXIT_BAD
