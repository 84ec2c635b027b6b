"""Pure policy pieces of ``ModelCheckpoint``: when to save, what to call the file, what to delete.

Everything here takes the clock value and the directory listing as inputs (or reads the
module-level clock ``_now``), so tests can drive it with a fake clock and ``os.utime``.

Retention (``RetentionPolicy``) keeps the same files MindSpore 2.10 keeps in steady state, but
unlike MindSpore it runs **after** the new checkpoint is complete (after an async save finished),
never deletes the file just written, deletes only files of its own naming pattern, and brings the
count all the way down to ``keep_checkpoint_max`` (MindSpore deletes at most one file per save).
"""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass, field
from collections.abc import Callable

__all__ = [
    "TriggerPolicy",
    "RetentionPolicy",
    "dedup_prefix",
    "checkpoint_file_name",
    "managed_files",
]

_logger = logging.getLogger("mindckpt")

#: The clock used for the time policy and for ``keep_checkpoint_per_n_minutes``.
#: Tests replace it (``monkeypatch.setattr(policies, "_now", fake)``).
_now: Callable[[], float] = time.time


def now() -> float:
    return _now()


# --------------------------------------------------------------------------- naming
def dedup_prefix(directory: str, prefix: str, exception: bool = False) -> str:
    """MindSpore's ``prefix_N`` rule (api-behavior.md section 4.2).

    Deviation: a file named exactly ``prefix`` is skipped instead of raising ``IndexError``.
    """
    try:
        files = os.listdir(directory)
    except FileNotFoundError:
        return prefix
    suffix_num = 0
    pre_len = len(prefix)
    for filename in files:
        if exception:
            if not filename.endswith("_breakpoint.ckpt"):
                continue
        else:
            ext = os.path.splitext(filename)[1]
            if ext not in (".ckpt", ".safetensors") or filename.endswith("_breakpoint.ckpt"):
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


def managed_files(directory: str, prefix: str, fmt: str) -> list[str]:
    """Full paths of the files retention may touch: ``{prefix}-<no letters>.{fmt}``."""
    ext = "." + fmt
    out: list[str] = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return out
    start = prefix + "-"
    for name in names:
        if os.path.splitext(name)[1] != ext or not name.startswith(start):
            continue
        middle = name[len(prefix) : -len(ext)]
        if any(ch.isalpha() for ch in middle):
            continue
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            out.append(path)
    return out


# --------------------------------------------------------------------------- trigger
@dataclass
class TriggerPolicy:
    """When ``ModelCheckpoint`` saves (api-behavior.md section 4.4), with MindSpore's arithmetic."""

    steps: int | None
    seconds: int | None
    last_triggered_step: int = 0
    last_time: float = field(default_factory=now)

    def reset(self, t: float | None = None) -> None:
        self.last_triggered_step = 0
        self.last_time = now() if t is None else t

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
def _remove(path: str) -> bool:
    try:
        os.chmod(path, stat.S_IWUSR)
        os.remove(path)
        return True
    except (OSError, ValueError) as exc:
        _logger.warning("Failed to remove the checkpoint file %s: %s", path, exc)
        return False


def _age_key(path: str) -> tuple[int, str]:
    try:
        return (os.stat(path).st_mtime_ns, os.path.basename(path))
    except OSError:
        return (-1, os.path.basename(path))


@dataclass
class RetentionPolicy:
    """``keep_checkpoint_max`` / ``keep_checkpoint_per_n_minutes`` applied after a complete save."""

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

    def apply(
        self,
        directory: str,
        prefix: str,
        fmt: str,
        new_file: str,
        save_time: float,
        previous_save_time: float,
    ) -> list[str]:
        """Delete what MindSpore would have deleted around the save of ``new_file``.

        ``save_time`` is the clock when the save started, ``previous_save_time`` the clock at the
        save before (or at train begin). Returns the deleted paths. Never deletes ``new_file``,
        and does nothing unless ``new_file`` exists (the save really completed).
        """
        if not os.path.isfile(new_file):
            return []
        new_real = os.path.realpath(new_file)
        files = [
            f for f in managed_files(directory, prefix, fmt) if os.path.realpath(f) != new_real
        ]
        deleted: list[str] = []
        if self.keep_max and self.keep_max > 0:
            # MindSpore: before each save, if max <= count, drop the oldest. After the save that
            # leaves max files. Here: after the save, drop the oldest until max files remain.
            excess = len(files) + 1 - self.keep_max
            if excess > 0:
                for path in sorted(files, key=_age_key)[:excess]:
                    if _remove(path):
                        deleted.append(path)
        elif self.per_n_minutes and self.per_n_minutes > 0:
            window = self.per_n_minutes * 60
            if save_time - previous_save_time < window:
                in_window = []
                for path in files:
                    try:
                        mtime = os.path.getmtime(path)
                    except OSError:
                        continue
                    if save_time - mtime < window:
                        in_window.append((mtime, path))
                if in_window:
                    oldest = min(in_window, key=lambda mp: (mp[0], os.path.basename(mp[1])))[1]
                    for _mtime, path in in_window:
                        if path != oldest and _remove(path):
                            deleted.append(path)
        return deleted
