"""``mindckpt rekey FILE``: encrypt, decrypt, or change the key or mode, block by block."""

from __future__ import annotations

import argparse
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

HELP = "encrypt, decrypt or change the key/mode of a .ckpt, streaming block by block"
DESCRIPTION = """\
Re-encrypt a .ckpt without loading it: the plaintext streams from FILE (decrypted block by block
when it is encrypted) through the record parser, which checks every record, into the new file
(encrypted block by block with --out-key). Memory stays at a few 64 MiB cipher blocks whatever
the file's size. FILE is replaced atomically, or -o OUT is written; nothing is replaced unless
the whole source checked out (GCM tags, CRC, records).

  encrypt:        mindckpt rekey plain.ckpt --out-key @new.key [--out-mode AES-GCM]
  decrypt:        mindckpt rekey secret.ckpt --key @old.key --decrypt [--crc]
  change the key: mindckpt rekey secret.ckpt --key @old.key --out-key @new.key -o new.ckpt

A plain source's CRC is checked, and dropped when the output is encrypted (MindSpore cannot
load encrypted files with a CRC); --crc gives a decrypted output a CRC.
"""


def register(sub: Any) -> None:
    p = sub.add_parser("rekey", help=HELP, description=DESCRIPTION,
                       formatter_class=HelpFormatter)
    p.add_argument("file", metavar="FILE", help="a .ckpt file")
    p.add_argument("-o", "--output", metavar="OUT", help="write OUT instead of replacing FILE")
    add_key_options(p, out=True, what="FILE")
    p.add_argument("--decrypt", action="store_true", help="write the output unencrypted")
    p.add_argument("--crc", action="store_true", help="give the decrypted output a CRC trailer")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mindckpt.tools import rekey_checkpoint
    from mindckpt.verify import sniff_checkpoint

    key = key_of(args)
    out_key = key_of(args, "out_key")
    if args.decrypt == (out_key is not None):
        raise UsageError("rekey needs exactly one of --out-key (encrypt with a new key or mode) "
                         "and --decrypt (write it plain)")
    if args.crc and out_key is not None:
        raise UsageError("--crc cannot be combined with --out-key: MindSpore cannot load an "
                         "encrypted file with a CRC (AES-GCM authenticates it)")
    _fmt, cipher = sniff_checkpoint(args.file)
    if cipher is not None and key is None:
        raise UsageError(f"{args.file} is encrypted with {cipher}: give its key with --key HEX "
                         "or --key @KEYFILE")
    if cipher is None and args.decrypt:
        raise UsageError(f"{args.file} is not encrypted: there is nothing to decrypt")
    with bar(f"rekey {args.file}", quiet=args.quiet) as progress:
        r = rekey_checkpoint(args.file, args.output, dec_key=key if cipher else None,
                             dec_mode=args.mode, enc_key=out_key, enc_mode=args.out_mode,
                             crc_check=args.crc, progress=progress)
    if args.json:
        emit_json({"path": r.path, "before": r.before, "after": r.after,
                   "bytes_written": r.bytes_written, "crc": r.crc})
        return 0
    crc = {"ok": ", source CRC ok", "added": ", CRC added", "absent": ""}[r.crc]
    print(f"wrote {r.path} ({r.before or 'plain'} -> {r.after or 'plain'}, "
          f"{human(r.bytes_written)}{crc})")
    return 0
