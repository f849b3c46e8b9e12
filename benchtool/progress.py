"""What a long run tells its user as it goes: one line before the first cell estimating how
long it will take (from the cells' past durations in the results store, at the same budget
and device), and a progress line after each cell that took :data:`PROGRESS_SECONDS` or more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

PROGRESS_SECONDS = 5.0  # a cell at least this long gets its own progress line


def format_duration(seconds: float) -> str:
    """``45 s``, ``7 min 30 s``, ``1 h 05 min``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class RunProgress:
    """The cells of a run with what each took when it last passed (None: no past duration)."""

    expected: dict[str, float | None]
    where: str  # "budget default on cpu"
    finished: set[str] = field(default_factory=set)

    @classmethod
    def plan(cls, keys: Iterable[str], past: Mapping[str, float], where: str) -> RunProgress:
        return cls({key: past.get(key) for key in keys}, where)

    @property
    def known(self) -> list[float]:
        return [seconds for seconds in self.expected.values() if seconds is not None]

    def estimate_line(self) -> str:
        """The line printed before the first cell."""
        total, known = len(self.expected), self.known
        if not known:
            return (f"benchtool estimate: none yet for these {total} cells (no past durations at {self.where} in the "
                    f"results store); each cell of {PROGRESS_SECONDS:g} s or more prints a progress line")
        missing = total - len(known)
        return (f"benchtool estimate: about {format_duration(sum(known))} for {len(known)} of {total} cells "
                f"(their last durations at {self.where} in the results store)"
                + (f"; {missing} cell(s) without one, not counted" if missing else ""))

    def cell_finished(self, key: str, label: str, seconds: float) -> str | None:
        """The progress line of a cell that took PROGRESS_SECONDS or more, else None."""
        self.finished.add(key)
        if seconds < PROGRESS_SECONDS:
            return None
        left = [s for k, s in self.expected.items() if k not in self.finished and s is not None]
        pending = sum(1 for k in self.expected if k not in self.finished)
        line = f"benchtool: {len(self.finished)}/{len(self.expected)} {label} took {format_duration(seconds)}"
        if pending and left:
            line += f"; about {format_duration(sum(left))} left"
        return line
