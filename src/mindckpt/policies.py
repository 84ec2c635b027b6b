"""Pure checkpoint-lifecycle decisions: when to save, what to call the file, what to delete.

Nothing here touches storage.  The caller lists the directory through a
:class:`~mindckpt.storage.base.Store` (``store.list(directory)`` -> :class:`FileInfo` with key,
size and mtime), hands the listing in, and removes what comes back; the clock is the module-level
``_now`` (tests replace it: ``monkeypatch.setattr(policies, "_now", fake)``).

Naming (MindSpore 2.10)
    ``{prefix}-{epoch}_{step_in_epoch}.{fmt}`` for regular saves, ``{prefix}-{epoch}_{step}_
    breakpoint.ckpt`` for the file written when training fails; a second run in a directory that
    already holds ``prefix-*`` files saves as ``prefix_1``, then ``prefix_2`` ... (:func:`dedup_prefix`).

Retention (:class:`RetentionPolicy`)
    Keeps the same files MindSpore 2.10 keeps in steady state, but it is decided only **after**
    the new checkpoint is complete, never selects the file just written, selects only files of
    the given naming pattern(s) (:func:`is_managed`), and brings the count all the way down to
    ``keep_checkpoint_max`` (MindSpore deletes at most one file per save).  Age is the mtime, then
    the name.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from mindckpt.storage.base import FileInfo

__all__ = [
    "TriggerPolicy",
    "RetentionPolicy",
    "CheckpointName",
    "dedup_prefix",
    "checkpoint_file_name",
    "breakpoint_file_name",
    "step_in_epoch",
    "is_managed",
    "managed",
    "parse_name",
    "run_prefixes",
    "newest",
]

#: The clock used for the time policy and for ``keep_checkpoint_per_n_minutes``.
_now: Callable[[], float] = time.time

BREAKPOINT_SUFFIX = "_breakpoint.ckpt"


def now() -> float:
    return _now()


# --------------------------------------------------------------------------- naming
def dedup_prefix(names: Iterable[str], prefix: str, exception: bool = False) -> str:
    """MindSpore's ``prefix_N`` rule over the directory's file names.

    Deviation: a file named exactly ``prefix`` is skipped instead of raising ``IndexError``.
    """
    suffix_num = 0
    pre_len = len(prefix)
    for filename in names:
        if exception:
            if not filename.endswith(BREAKPOINT_SUFFIX):
                continue
        else:
            dot = filename.rfind(".")
            ext = filename[dot:] if dot > 0 else ""
            if ext not in (".ckpt", ".safetensors") or filename.endswith(BREAKPOINT_SUFFIX):
                continue
        if not filename.startswith(prefix) or len(filename) == pre_len:
            continue
        if filename[pre_len].isalpha():
            continue
        index = filename[pre_len:].find("-")
        if index == 0:
            suffix_num = max(suffix_num, 1)
        elif index != -1:
            num = filename[pre_len + 1 : pre_len + index]
            if num.isdigit():
                try:
                    suffix_num = max(suffix_num, int(num) + 1)
                except ValueError:  # unicode digits int() does not take
                    pass
    if suffix_num:
        return f"{prefix}_{suffix_num}"
    return prefix


def step_in_epoch(cur_step_num: int, batch_num: int) -> int:
    return int((cur_step_num - 1) % batch_num + 1)


def checkpoint_file_name(prefix: str, epoch: int, step: int, fmt: str) -> str:
    return f"{prefix}-{epoch}_{step}.{fmt}"


def breakpoint_file_name(prefix: str, epoch: int, step: int) -> str:
    return f"{prefix}-{epoch}_{step}{BREAKPOINT_SUFFIX}"


def is_managed(name: str, prefix: str, fmt: str) -> bool:
    """Whether retention may touch ``name``: ``{prefix}-<no letters>.{fmt}``."""
    ext = "." + fmt
    if not name.endswith(ext) or not name.startswith(prefix + "-"):
        return False
    middle = name[len(prefix) : -len(ext)]
    return not any(ch.isalpha() for ch in middle)


def managed(listing: Iterable[FileInfo], prefixes: str | Sequence[str], fmt: str) -> list[FileInfo]:
    """The entries of ``listing`` named like regular saves of any of ``prefixes``."""
    if isinstance(prefixes, str):
        prefixes = (prefixes,)
    return [f for f in listing if any(is_managed(f.name, p, fmt) for p in prefixes)]


class CheckpointName(NamedTuple):
    """What a file name says: run prefix (``p`` or ``p_N``), run number, epoch, step, kind."""

    prefix: str
    run: int  # 0 for ``p``, N for ``p_N``
    epoch: int
    step: int
    breakpoint: bool
    format: str


def parse_name(name: str, prefix: str) -> CheckpointName | None:
    """Parse ``{prefix}[_N]-{epoch}_{step}[_breakpoint].{ckpt|safetensors}``; None otherwise."""
    m = re.fullmatch(
        re.escape(prefix) + r"(?:_(\d+))?-(\d+)_(\d+)(_breakpoint)?\.(ckpt|safetensors)", name
    )
    if m is None or (m.group(4) and m.group(5) != "ckpt"):
        return None
    run = int(m.group(1)) if m.group(1) else 0
    run_prefix = f"{prefix}_{run}" if m.group(1) else prefix
    return CheckpointName(
        run_prefix, run, int(m.group(2)), int(m.group(3)), bool(m.group(4)), m.group(5)
    )


def run_prefixes(listing: Iterable[FileInfo], prefix: str) -> list[str]:
    """Every run prefix (``prefix``, ``prefix_1``, ...) that has files in ``listing``."""
    found = {p.prefix for f in listing if (p := parse_name(f.name, prefix)) is not None}
    return sorted(found, key=lambda s: (len(s), s))


def newest(listing: Iterable[FileInfo], prefix: str) -> list[tuple[FileInfo, CheckpointName]]:
    """The checkpoints of ``prefix`` (every run, breakpoints included), oldest first.

    Order: modification time, then (epoch, step), then a regular file before a breakpoint file
    of the same position, then the name.
    """
    items = [(f, p) for f in listing if (p := parse_name(f.name, prefix)) is not None]
    items.sort(key=lambda fp: (fp[0].mtime, fp[1].epoch, fp[1].step, fp[1].breakpoint, fp[0].name))
    return items


# --------------------------------------------------------------------------- trigger
@dataclass
class TriggerPolicy:
    """When ``ModelCheckpoint`` saves, with MindSpore's arithmetic."""

    steps: int | None
    seconds: int | None
    last_triggered_step: int = 0
    last_time: float = field(default_factory=now)

    def reset(self, t: float | None = None) -> None:
        self.last_triggered_step = 0
        self.last_time = now() if t is None else t

    def resume_at(self, done_step: int) -> None:
        """Continue a schedule whose steps up to ``done_step`` already ran (a resumed job): the
        next save lands where the uninterrupted run's would."""
        if self.steps and self.steps > 0:
            self.last_triggered_step = done_step - done_step % self.steps
        else:
            self.last_triggered_step = done_step

    def should_save(self, cur_step_num: int, force: bool = False) -> bool:
        """Decide for this step; records the save (step and time) when it says yes."""
        if cur_step_num == self.last_triggered_step:
            return False
        decision = False
        if self.steps and self.steps > 0:
            decision = cur_step_num >= self.last_triggered_step + self.steps or force
        elif self.seconds and self.seconds > 0:
            t = now()
            if (t - self.last_time) > self.seconds or force:
                self.last_time = t
                decision = True
        if decision:
            self.last_triggered_step = cur_step_num
        return decision


# --------------------------------------------------------------------------- retention
def _age(f: FileInfo) -> tuple[float, str]:
    return (f.mtime, f.name)


@dataclass
class RetentionPolicy:
    """``keep_checkpoint_max`` / ``keep_checkpoint_per_n_minutes`` decided after a complete save."""

    keep_max: int | None
    per_n_minutes: int | None
    last_save_time: float = field(default_factory=now)

    def reset(self, t: float | None = None) -> None:
        self.last_save_time = now() if t is None else t

    def note_save(self, t: float) -> float:
        """Record a save started at clock value ``t``; return the previous save time."""
        previous = self.last_save_time
        self.last_save_time = t
        return previous

    def select(
        self,
        files: Sequence[FileInfo],
        new_key: str,
        save_time: float,
        previous_save_time: float,
    ) -> list[FileInfo]:
        """What to delete around the completed save of ``new_key`` (pure).

        ``files`` are the managed checkpoints now present (the new one may be among them: it is
        never selected); ``save_time`` is the clock when the save started, ``previous_save_time``
        the clock at the save before (or at train begin).
        """
        others = [f for f in files if f.key != new_key]
        if self.keep_max and self.keep_max > 0:
            # MindSpore: before each save, if max <= count, drop the oldest. After the save that
            # leaves max files. Here: after the save, drop the oldest until max files remain.
            excess = len(others) + 1 - self.keep_max
            return sorted(others, key=_age)[:excess] if excess > 0 else []
        if self.per_n_minutes and self.per_n_minutes > 0:
            window = self.per_n_minutes * 60
            if save_time - previous_save_time >= window:
                return []
            in_window = [f for f in others if save_time - f.mtime < window]
            if not in_window:
                return []
            oldest = min(in_window, key=_age)
            return [f for f in in_window if f is not oldest]
        return []
