"""``mindckpt inspect FILE``: what a checkpoint holds, from its headers alone."""

from __future__ import annotations

import argparse
import fnmatch
from typing import Any

from ._common import HelpFormatter, add_common, add_key_options, emit_json, human, key_of

HELP = "show a checkpoint's format, CRC, encryption, metadata and entries (headers only)"
DESCRIPTION = """\
Show what a checkpoint holds without reading its tensors: the format, the file size, whether
it has a CRC (and, with --crc, whether it matches), the encryption mode, safetensors metadata,
the number of entries, total elements, bytes per dtype, and a table of entries (name, dtype,
shape, size).

Plain .ckpt and safetensors files: only headers are read. An encrypted .ckpt keeps its record
headers inside the ciphertext, so the blocks holding them are decrypted.

examples:
  mindckpt inspect net.ckpt
  mindckpt inspect net.safetensors --filter 'fc*' --sort size
  mindckpt inspect secret.ckpt --key @key.hex --json
"""


def register(sub: Any) -> None:
    p = sub.add_parser("inspect", help=HELP, description=DESCRIPTION,
                       formatter_class=HelpFormatter)
    p.add_argument("file", help="a .ckpt or .safetensors file (path or URL)")
    add_key_options(p, what="FILE")
    p.add_argument("--crc", action="store_true",
                   help="also check the stored CRC (reads the whole file)")
    p.add_argument("--filter", action="append", default=[], metavar="GLOB",
                   help="show only entries whose name matches GLOB (repeatable)")
    p.add_argument("--dtype", action="append", default=[], metavar="DTYPE",
                   help="show only entries of this stored type (Float32, BFloat16, str ...; "
                        "repeatable)")
    p.add_argument("--sort", choices=["file", "name", "size"], default="file",
                   help="order of the table")
    p.add_argument("--limit", type=int, metavar="N", help="show at most N entries")
    p.add_argument("--summary", action="store_true", help="no table of entries")
    p.add_argument("--values", action="store_true",
                   help="show the value of str entries (reads those bytes)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_common(p)
    p.set_defaults(func=run)


def _select(entries: list[Any], args: argparse.Namespace) -> list[Any]:
    from mindckpt.verify import entry_type

    out = [e for e in entries
           if (not args.filter or any(fnmatch.fnmatchcase(e.name, g) for g in args.filter))
           and (not args.dtype or entry_type(e).lower() in {d.lower() for d in args.dtype})]
    if args.sort == "name":
        out.sort(key=lambda e: e.name)
    elif args.sort == "size":
        out.sort(key=lambda e: (-e.nbytes, e.name))
    if args.limit is not None:
        out = out[:max(0, args.limit)]
    return out


def _str_values(args: argparse.Namespace, key: bytes | None, names: list[str]) -> dict[str, Any]:
    if not names:
        return {}
    import mindckpt

    with mindckpt.open_checkpoint(args.file, dec_key=key, dec_mode=args.mode) as f:
        return {n: f.get_tensor(n) for n in names}


def run(args: argparse.Namespace) -> int:
    from mindckpt.verify import describe_checkpoint, entry_type

    key = key_of(args)
    info = describe_checkpoint(args.file, dec_key=key, dec_mode=args.mode, crc_check=args.crc)
    shown = _select(info.entries, args)
    values = _str_values(args, key, [e.name for e in shown if e.kind == "str"]) \
        if args.values else {}
    kinds = {k: sum(1 for e in info.entries if e.kind == k) for k in ("tensor", "str", "map")}
    if args.json:
        emit_json({
            "path": args.file,
            "format": info.format,
            "file_size": info.file_size,
            "plain_size": info.plain_size,
            "encryption": info.cipher,
            "crc": {"present": info.crc is not None, "value": info.crc,
                    "checked": bool(args.crc and info.crc is not None)},
            "metadata": info.metadata,
            "entries_total": len(info.entries),
            "kinds": kinds,
            "total_elements": info.total_elements,
            "total_bytes": info.total_bytes,
            "bytes_by_dtype": info.bytes_by_dtype,
            "entries": [
                {"name": e.name, "kind": e.kind, "dtype": entry_type(e),
                 "shape": list(e.shape) if e.kind == "tensor" else None, "nbytes": e.nbytes,
                 **({"value": values[e.name]} if e.name in values else {})}
                for e in shown
            ],
        })
        return 0
    if info.crc is None:
        crc = "none"
    elif args.crc:
        crc = f"present, checked: matches (crc32 {info.crc})"
    else:
        crc = f"present (crc32 {info.crc}; check it with --crc or mindckpt verify)"
    rows = [
        ("file", args.file),
        ("format", "MindSpore .ckpt (protobuf records)" if info.format == "ckpt"
         else "safetensors"),
        ("size", f"{human(info.file_size)} ({info.file_size} bytes)"
         + (f", {info.plain_size} bytes decrypted" if info.cipher else "")),
        ("crc", crc),
        ("encryption", info.cipher or "none"),
    ]
    if info.format == "safetensors":
        meta = ", ".join(f"{k}={v}" for k, v in info.metadata.items()) or "none"
        rows.append(("metadata", meta))
    parts = [f"{kinds['tensor']} tensors"] + [f"{kinds[k]} {k}" for k in ("str", "map")
                                                if kinds[k]]
    rows.append(("entries", f"{len(info.entries)} ({', '.join(parts)}), "
                            f"{info.total_elements} elements, {human(info.total_bytes)}"))
    rows.append(("by dtype", ", ".join(f"{t} {human(n)}" for t, n in info.bytes_by_dtype.items())
                 or "-"))
    for k, v in rows:
        print(f"{k:<11} {v}")
    if args.summary:
        return 0
    print()
    table = [("NAME", "DTYPE", "SHAPE", "SIZE")]
    for e in shown:
        shape = str(tuple(e.shape)) if e.kind == "tensor" else "-"
        dtype = entry_type(e)
        if e.name in values:
            shape = repr(values[e.name])
        table.append((e.name, dtype, shape, human(e.nbytes)))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for r in table:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip())
    if len(shown) != len(info.entries):
        print(f"({len(shown)} of {len(info.entries)} entries shown)")
    return 0
