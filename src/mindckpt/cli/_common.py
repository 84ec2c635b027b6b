"""What every subcommand shares: key options, CLI-shaped error messages, exit codes, sizes."""

from __future__ import annotations

import argparse
import json
import os
import re
import string
import sys
from typing import Any

__all__ = [
    "EXIT_OK",
    "EXIT_BAD",
    "EXIT_USAGE",
    "UsageError",
    "HelpFormatter",
    "add_common",
    "add_key_options",
    "parse_key",
    "key_of",
    "translate",
    "human",
    "emit_json",
]

EXIT_OK = 0
EXIT_BAD = 1  # a file is bad, the files differ, the operation failed
EXIT_USAGE = 2  # wrong options, a missing file or key

KEY_HELP = ("the key as hex digits (32, 48 or 64 of them: AES-128/192/256; SM4 takes 32), or "
            "@FILE to read it from FILE (hex text, or the raw key bytes)")


class UsageError(Exception):
    """Bad options or option values: printed as one line, exit status 2."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions printed as written (plain text, no markup), defaults shown."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS, [], ()) and "%(default)" not in text \
                and action.option_strings:
            text += " (default: %(default)s)"
        return text


def add_common(p: argparse.ArgumentParser) -> None:
    """``--quiet`` and ``--debug`` on every subcommand."""
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar and no notes on stderr")
    p.add_argument("--debug", action="store_true",
                   help="on an error, print the full traceback")


def add_key_options(p: argparse.ArgumentParser, *, out: bool = False, suffix: str = "",
                    what: str = "the input") -> None:
    """``--key``/``--mode`` (and ``--out-key``/``--out-mode`` for commands that write)."""
    p.add_argument(f"--key{suffix}", metavar="HEX|@FILE", dest=f"key{suffix.replace('-', '_')}",
                   help=f"decryption key of {what}: {KEY_HELP}")
    p.add_argument(f"--mode{suffix}", metavar="MODE", dest=f"mode{suffix.replace('-', '_')}",
                   choices=["AES-GCM", "AES-CBC", "SM4-CBC"],
                   help="cipher of an encrypted input: only needed to override the mode read "
                        "from the file (AES-GCM, AES-CBC, SM4-CBC)")
    if out:
        p.add_argument("--out-key", metavar="HEX|@FILE",
                       help=f"encrypt the output .ckpt with this key: {KEY_HELP}")
        p.add_argument("--out-mode", metavar="MODE", default="AES-GCM",
                       choices=["AES-GCM", "AES-CBC", "SM4-CBC"],
                       help="cipher of the output (AES-CBC and SM4-CBC have no integrity "
                            "protection)")


_HEX = set(string.hexdigits)


def parse_key(text: str | None, option: str = "--key") -> bytes | None:
    """A key given on the command line: hex digits, or ``@FILE`` (hex text or raw bytes)."""
    if text is None:
        return None
    if text.startswith("@"):
        path = text[1:]
        try:
            with open(path, "rb") as f:
                raw = f.read(4097)
        except OSError as e:
            raise UsageError(f"{option} {text}: cannot read the key file {path}: "
                             f"{e.strerror or e}") from None
        if len(raw) > 4096:
            raise UsageError(f"{option} {text}: {path} is larger than 4 KiB; a key file holds "
                             "one key (hex text or the raw bytes)")
        stripped = raw.strip()
        try:
            as_text = stripped.decode("ascii")
        except UnicodeDecodeError:
            as_text = ""
        if as_text and len(as_text) % 2 == 0 and set(as_text) <= _HEX:
            return bytes.fromhex(as_text)
        if not raw:
            raise UsageError(f"{option} {text}: the key file {path} is empty")
        return raw
    clean = text.strip().removeprefix("0x").removeprefix("0X")
    if not clean or len(clean) % 2 or not set(clean) <= _HEX:
        raise UsageError(
            f"{option} takes the key as hex digits (e.g. {option} 000102030405060708090a0b0c0d0e0f"
            f" for a 16-byte key) or @FILE to read it from a file; got {text!r}, which is not "
            "hex")
    return bytes.fromhex(clean)


def key_of(args: argparse.Namespace, name: str = "key") -> bytes | None:
    return parse_key(getattr(args, name, None), "--" + name.replace("_", "-"))


# library wording -> CLI wording; the first matching rules are applied in order
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"pass dec_key=<the key used to save it> and dec_mode='([^']+)'"),
     r"give its key with --key HEX or --key @KEYFILE (the mode, \1, is read from the file)"),
    (re.compile(r"Load it without dec_key \(and dec_mode\)"), "Leave out --key and --mode"),
    (re.compile(r"Pass the enc_key and enc_mode used when saving"),
     "Give the --key (and --mode) it was saved with"),
    (re.compile(r"Pass the enc_key used when saving"), "Give the --key it was saved with"),
    (re.compile(r"which MindSpore writes when enc_key and crc_check=True are combined"),
     "which MindSpore writes when a key and a CRC are combined"),
    (re.compile(r"\bdec_mode=(?=')"), "--mode "),
    (re.compile(r"\benc_mode='([^']+)'"), r"--out-mode \1"),
    (re.compile(r"Load it without dec_key"), "Leave out --key"),
    (re.compile(r"Pass dec_mode=('[^']+')"), r"Give --mode \1 (or leave --mode out: it is read "
                                             r"from the file)"),
    (re.compile(r"Load it with crc_check=False if you trust it"),
     "Leave out --crc if you trust it"),
    (re.compile(r"pass overwrite=True to replace it"), "give --force to replace it"),
    (re.compile(r"or pass dst_format='ckpt' or 'safetensors'"), "or give --to ckpt|safetensors"),
    (re.compile(r"\bFor '(load_checkpoint|save_checkpoint)', "), ""),
    (re.compile(r"^(convert_checkpoint|rekey_checkpoint|diff_checkpoints|open_checkpoint|"
                r"verify_checkpoint|list_checkpoints): "), ""),
    (re.compile(r"\bdec_key=?\b"), "--key"),
    (re.compile(r"\bdec_mode\b"), "--mode"),
    (re.compile(r"\benc_key\b"), "--out-key"),
    (re.compile(r"\benc_mode\b"), "--out-mode"),
    (re.compile(r"\bcrc_check=True\b"), "--crc"),
    (re.compile(r"\bcrc_check\b"), "--crc"),
]


def translate(message: str) -> str:
    """A library message in the CLI's terms: its option names instead of keyword arguments."""
    for pattern, repl in _RULES:
        message = pattern.sub(repl, message)
    return " ".join(message.split())


def human(n: int) -> str:
    """Bytes for people: ``247.0 KiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def same_file(a: str, b: str) -> bool:
    try:
        return "://" not in a and "://" not in b and os.path.samefile(a, b)
    except OSError:
        return False
