"""A one-line training progress bar on stderr, with no dependency.

On a terminal the line is redrawn in place; elsewhere (CI logs, captured output) a line
is printed at most every ``LOG_EVERY_S`` seconds and once at the end.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 20
LOG_EVERY_S = 30.0


class ProgressLine:
    """Progress of ``total`` steps labelled ``label``; does nothing when disabled."""

    def __init__(self, label: str, total: int, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(total, 1)
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.perf_counter()
        self.last_logged = self.started

    def _line(self, done: int, status: str) -> str:
        filled = BAR_WIDTH * done // self.total
        elapsed = time.perf_counter() - self.started
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return f"{self.label} [{bar}] {done}/{self.total} {status} {elapsed:.1f}s"

    def update(self, done: int, status: str = "") -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.interactive:
            self.stream.write("\r\033[K" + self._line(done, status))
            self.stream.flush()
        elif now - self.last_logged >= LOG_EVERY_S:
            self.stream.write(self._line(done, status) + "\n")
            self.last_logged = now

    def close(self, status: str = "") -> None:
        if not self.enabled:
            return
        prefix = "\r\033[K" if self.interactive else ""
        self.stream.write(prefix + self._line(self.total, status) + "\n")
        self.stream.flush()
