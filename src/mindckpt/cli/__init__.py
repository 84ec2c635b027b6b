"""The ``mindckpt`` command.  Each subcommand is one module here and calls only the public API.

Exit status: 0 success; 1 a file is bad, the files differ, or the operation failed; 2 wrong
options, a missing file or a missing key.  Errors are one line on stderr (``--debug``: with the
traceback).
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any

from . import convert, demo, diff, inspect, ls, rekey, verify
from ._common import EXIT_BAD, EXIT_USAGE, HelpFormatter, UsageError, translate

__all__ = ["main", "build_parser"]

DESCRIPTION = """\
Look at, check, compare and convert MindSpore checkpoints (.ckpt: plain, CRC, AES-GCM,
AES-CBC, SM4-CBC; safetensors), without MindSpore.

Keys are given as hex digits (--key 000102...0f) or as @FILE. The cipher mode of an encrypted
file is read from the file; --mode only overrides it.

exit status: 0 success, 1 a file is bad / the files differ / the operation failed,
             2 wrong options, a missing file or a missing key
"""

COMMANDS = (inspect, verify, diff, convert, rekey, ls, demo)


def build_parser() -> argparse.ArgumentParser:
    from mindckpt import __version__

    p = argparse.ArgumentParser(prog="mindckpt", description=DESCRIPTION,
                                formatter_class=HelpFormatter)
    p.add_argument("--version", action="version", version=f"mindckpt {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return p


def _exit_code(exc: BaseException, args: argparse.Namespace) -> int:
    from mindckpt import CheckpointNotFoundError, DecryptionError

    if isinstance(exc, (UsageError, CheckpointNotFoundError, FileNotFoundError,
                        FileExistsError, IsADirectoryError)):
        return EXIT_USAGE
    if isinstance(exc, DecryptionError) and "is encrypted with" in str(exc):
        return EXIT_USAGE  # a key is missing: an option, not a bad file
    return EXIT_BAD


def _show_warning(quiet: bool) -> Any:
    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
             line: Any = None) -> None:
        if not quiet:
            print(f"mindckpt: warning: {translate(str(message))}", file=sys.stderr)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors (argparse exits 2)
        return int(e.code) if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
    old = warnings.showwarning
    warnings.showwarning = _show_warning(getattr(args, "quiet", False))
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("mindckpt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:
        if getattr(args, "debug", False):
            traceback.print_exc()
        from mindckpt import CheckpointError

        text = translate(str(e)) or type(e).__name__
        if not isinstance(e, (CheckpointError, UsageError, ValueError, TypeError, OSError,
                              KeyError, ImportError)):
            text = f"internal error ({type(e).__name__}): {text}; run with --debug for details"
        elif isinstance(e, KeyError):
            text = text.strip("\"'")
        print(f"mindckpt {args.cmd}: error: {text}", file=sys.stderr)
        return _exit_code(e, args)
    finally:
        warnings.showwarning = old
