"""Progress on the terminal: a ``tqdm`` bar when tqdm is installed, a plain line otherwise.

Nothing is shown when stderr is not a terminal or with ``--quiet``.  The library reports
``progress(done, total)`` in bytes; :func:`bar` turns that into a display, and the display only
starts after ``delay`` seconds, so quick jobs print nothing.
"""

from __future__ import annotations

import io
import os
import sys
import time
from typing import Any, TextIO

__all__ = ["bar", "Bar", "NullBar"]

DELAY = float(os.environ.get("MINDCKPT_PROGRESS_DELAY", "1.0"))  # seconds before a bar shows


class NullBar:
    """Shows nothing."""

    def __call__(self, done: int, total: int) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> NullBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Bar(NullBar):
    """``progress(done, total)`` shown on ``stream``: tqdm if importable, else a ``\\r`` line."""

    def __init__(self, desc: str, stream: TextIO, *, delay: float = DELAY,
                 use_tqdm: bool = True):
        self.desc = desc
        self.stream = stream
        self.delay = delay
        self.start = time.monotonic()
        self._tqdm: Any = None
        self._use_tqdm = use_tqdm
        self._last = 0.0
        self._shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.start < self.delay:
            return
        if self._use_tqdm and self._tqdm is None:
            try:
                from tqdm import tqdm
            except ImportError:
                self._use_tqdm = False
            else:
                cols, rows = _size(self.stream)
                self._tqdm = tqdm(total=total, desc=self.desc, unit="B", unit_scale=True,
                                  unit_divisor=1024, file=self.stream, leave=False,
                                  ncols=cols, nrows=rows, mininterval=3600.0)
        if now - self._last < 0.2 and done < total and self._shown:
            return
        self._last = now
        self._shown = True
        if self._tqdm is not None:  # drawn here, at our pace, not at tqdm's own intervals
            self._tqdm.total = total
            self._tqdm.n = done
            self._tqdm.refresh()
            return
        pct = 100.0 * done / total if total else 100.0
        rate = done / max(now - self.start, 1e-9) / (1 << 20)
        self.stream.write(f"\r{self.desc}: {pct:5.1f}% {done >> 20}/{total >> 20} MiB "
                          f"{rate:.0f} MiB/s")
        self.stream.flush()

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
        elif self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False


def _size(stream: TextIO) -> tuple[int, int]:
    """The terminal's columns and rows; 80x24 where it reports none (a fresh pty says 0x0, and
    tqdm then draws nothing)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return 80, 24
    return size.columns or 80, size.lines or 24


def bar(desc: str, *, quiet: bool = False, stream: TextIO | None = None) -> NullBar:
    """A progress display for ``desc``, or one that shows nothing (quiet, or not a terminal)."""
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    if quiet or isatty is None or not isatty():
        return NullBar()
    return Bar(desc, stream)
