"""The checkpoints of a ``ModelCheckpoint`` directory: :func:`list_checkpoints`.

::

    for c in list_checkpoints("ckpts"):          # oldest first, newest last
        c.name, c.epoch, c.step, c.size, c.mtime, c.complete, c.latest

A checkpoint is a file named as ``ModelCheckpoint`` names them (MindSpore 2.10):
``{prefix}[_N]-{epoch}_{step}.ckpt`` (or ``.safetensors``), and
``{prefix}-{epoch}_{step}_breakpoint.ckpt`` for the file saved when training fails.  Each one's
headers are read to tell whether it is complete (a truncated file, or one whose records do not
parse, is not); an encrypted file is reported as such, since its records cannot be read without
the key.  Temporary files of saves in progress (``.name.XXXXXXXX.tmp``) are listed as incomplete.

``latest`` marks the checkpoint to resume from: what :func:`mindckpt.train.latest_checkpoint`
returns for the directory's prefix (the newest complete checkpoint by modification time,
breakpoint files included).  Where the directory holds several prefixes and none is given, it is
the newest complete regular (not breakpoint) checkpoint.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from .errors import CheckpointError

__all__ = ["CheckpointFile", "list_checkpoints", "parse_checkpoint_name"]

_NAME = re.compile(r"(?P<prefix>.+?)-(?P<epoch>\d+)_(?P<step>\d+)(?P<bp>_breakpoint)?"
                   r"\.(?P<fmt>ckpt|safetensors)")
_TEMP = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]{8}\.tmp$")


@dataclass
class CheckpointFile:
    """One checkpoint of a directory.

    Attributes:
        name, path: the file name and its full path.
        prefix: the run prefix (``mlp``, ``mlp_1``, ...).
        epoch, step: from the name (``step`` is the step within the epoch, as MindSpore names it).
        breakpoint: the file ``exception_save`` writes when training fails.
        format: ``"ckpt"`` or ``"safetensors"``.
        size: bytes; mtime: modification time (seconds since the epoch).
        complete: its headers parse (``None``: encrypted, not checked).
        status: ``"complete"``, ``"incomplete: <why>"``, ``"encrypted (AES-GCM)"``, ``"in progress"``.
        latest: the checkpoint to resume from (see the module doc).
    """

    name: str
    path: str
    prefix: str
    epoch: int
    step: int
    breakpoint: bool
    format: str
    size: int
    mtime: float
    complete: bool | None
    status: str
    latest: bool = False


def parse_checkpoint_name(name: str) -> tuple[str, int, int, bool, str] | None:
    """``(prefix, epoch, step, breakpoint, format)`` of a ``ModelCheckpoint`` file name."""
    m = _NAME.fullmatch(name)
    if m is None or (m.group("bp") and m.group("fmt") != "ckpt"):
        return None
    return (m.group("prefix"), int(m.group("epoch")), int(m.group("step")), bool(m.group("bp")),
            m.group("fmt"))


def _reason(message: str) -> str:
    """The cause part of a reading error (after the file's name)."""
    for marker in ("cannot be parsed: ", "is damaged: ", ": "):
        if marker in message:
            message = message.split(marker, 1)[1]
            break
    return message.split(". ")[0].rstrip(".")


def _status(path: str) -> tuple[bool | None, str]:
    from .verify import describe_checkpoint

    try:
        describe_checkpoint(path)
    except CheckpointError as e:
        text = str(e)
        if "is encrypted with" in text:
            mode = text.split("is encrypted with", 1)[1].split(";")[0].strip()
            return None, f"encrypted ({mode})"
        return False, "incomplete: " + _reason(text)
    except OSError as e:
        return False, f"unreadable: {e.strerror or e}"
    return True, "complete"


def _train_latest(directory: str, prefixes: set[str]) -> str | None:
    """``mindckpt.train.latest_checkpoint(directory, prefix)`` when the library has it (one home
    for the resume rule), for the one base prefix of the directory's files."""
    import logging

    from . import train

    fn = getattr(train, "latest_checkpoint", None)
    if fn is None or len(prefixes) != 1:
        return None
    log = logging.getLogger("mindckpt")
    level = log.level
    log.setLevel(logging.ERROR)  # the listing reports damaged files itself
    try:
        got = fn(directory, next(iter(prefixes)))
    except (TypeError, CheckpointError, OSError):
        return None
    finally:
        log.setLevel(level)
    return os.fspath(got) if isinstance(got, (str, os.PathLike)) else None


def list_checkpoints(directory: Any, prefix: str | None = None) -> list[CheckpointFile]:
    """The checkpoints in ``directory`` (a local path), oldest first (see the module doc).

    Args:
        directory: the ``ModelCheckpoint`` directory.
        prefix: only this run prefix and its ``prefix_N`` reruns (default: every prefix).

    Raises:
        CheckpointNotFoundError: ``directory`` does not exist or is not a directory.
    """
    from .errors import CheckpointNotFoundError

    if isinstance(directory, os.PathLike):
        directory = os.fspath(directory)
    if not isinstance(directory, str):
        raise TypeError(f"list_checkpoints: directory must be a path, got {directory!r}")
    if not os.path.isdir(directory):
        raise CheckpointNotFoundError(f"The checkpoint directory {directory} does not exist or "
                                      "is not a directory.")
    found: list[CheckpointFile] = []
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        temp = _TEMP.match(name)
        parsed = parse_checkpoint_name(temp.group("target") if temp else name)
        if parsed is None or not os.path.isfile(path):
            continue
        pre, epoch, step, bp, fmt = parsed
        if prefix is not None and not re.fullmatch(re.escape(prefix) + r"(_\d+)?", pre):
            continue
        st = os.stat(path)
        complete: bool | None
        if temp:
            complete, status = False, "in progress (temporary file of a save)"
        else:
            complete, status = _status(path)
        found.append(CheckpointFile(name, path, pre, epoch, step, bp, fmt, st.st_size,
                                    st.st_mtime, complete, status))
    found.sort(key=lambda c: (c.mtime, c.epoch, c.step, c.breakpoint, c.name))
    bases = {prefix} if prefix is not None else {re.sub(r"_\d+$", "", c.prefix) for c in found}
    chosen = _train_latest(directory, bases) if found else None
    if chosen is not None:
        for c in found:
            if os.path.realpath(c.path) == os.path.realpath(chosen):
                c.latest = True
                return found
    for c in reversed(found):
        if not c.breakpoint and c.complete is not False and not c.name.startswith("."):
            c.latest = True
            break
    return found
