"""What a long run tells its user as it goes: one line before the first cell estimating how
long it will take (from the cells' past durations in the results store, at the same budget
and device, else from the durations this project measured on its reference machine), and a
progress line after each cell that took :data:`PROGRESS_SECONDS` or more.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources

PROGRESS_SECONDS = 5.0  # a cell at least this long gets its own progress line
REFERENCE_FILE = "reference_durations.json"  # package data: {"machine": ..., "durations": {"budget/device": {...}}}


@dataclass(frozen=True)
class ReferenceDurations:
    """What each cell took on the project's reference machine (``machine`` says which), for
    the estimate of a first run: the store knows nothing yet, and a Fashion-MNIST run at the
    default budget is hours on a CPU, which a user should hear before it starts."""

    machine: str
    durations: dict[str, float]

    @classmethod
    def load(cls, budget: str, device: str) -> ReferenceDurations:
        """The shipped durations at ``budget`` on ``device``'s type (``cuda:1`` reads ``cuda``)."""
        data = json.loads(resources.files("benchtool").joinpath(REFERENCE_FILE).read_text())
        found = data["durations"].get(f"{budget}/{device.split(':')[0]}", {})
        return cls(data["machine"], {key: float(seconds) for key, seconds in found.items()})


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
    reference_machine: str = ""  # where the cells in ``from_reference`` were measured
    from_reference: set[str] = field(default_factory=set)  # cells expected from the reference durations
    finished: set[str] = field(default_factory=set)
    workers: int = 1  # processes the cells are spread over (pytest-xdist): times left are divided by them

    @classmethod
    def plan(cls, keys: Iterable[str], past: Mapping[str, float], where: str,
             reference: ReferenceDurations | None = None, workers: int = 1) -> RunProgress:
        """Each cell's last duration in the store, else its reference duration, else None."""
        expected: dict[str, float | None] = {}
        borrowed = set()
        for key in keys:
            expected[key] = past.get(key)
            if expected[key] is None and reference is not None and key in reference.durations:
                expected[key] = reference.durations[key]
                borrowed.add(key)
        return cls(expected, where, reference.machine if reference else "", borrowed, workers=max(1, workers))

    @property
    def known(self) -> list[float]:
        return [seconds for seconds in self.expected.values() if seconds is not None]

    def estimate_line(self) -> str:
        """The line printed before the first cell."""
        total, known = len(self.expected), self.known
        if not known:
            return (f"benchtool estimate: none yet for these {total} cells (no past durations at {self.where} in the "
                    f"results store); each cell of {PROGRESS_SECONDS:g} s or more prints a progress line")
        missing, borrowed = total - len(known), len(self.from_reference)
        stored = f"last durations at {self.where} in the results store"
        reference = f"durations measured on {self.reference_machine}"
        if not borrowed:
            sources = f"their {stored}"
        elif borrowed == len(known):
            sources = f"the {reference}"
        else:
            sources = f"{len(known) - borrowed} from their {stored}, {borrowed} from the {reference}"
        return (f"benchtool estimate: about {self._wall(sum(known))} for {len(known)} of {total} cells "
                f"({sources})" + (f"; {missing} cell(s) without one, not counted" if missing else ""))

    def _wall(self, seconds: float) -> str:
        """How long ``seconds`` of cells take: spread evenly over the workers where there are
        several (at best: cells sharing a model stay on one worker)."""
        if self.workers == 1:
            return format_duration(seconds)
        spread = format_duration(seconds / self.workers)
        return f"{spread} on {self.workers} workers ({format_duration(seconds)} of cells)"

    def cell_finished(self, key: str, label: str, seconds: float) -> str | None:
        """The progress line of a cell that took PROGRESS_SECONDS or more, else None."""
        self.finished.add(key)
        if seconds < PROGRESS_SECONDS:
            return None
        left = [s for k, s in self.expected.items() if k not in self.finished and s is not None]
        pending = sum(1 for k in self.expected if k not in self.finished)
        line = f"benchtool: {len(self.finished)}/{len(self.expected)} {label} took {format_duration(seconds)}"
        if pending and left:
            line += f"; about {format_duration(sum(left) / self.workers)} left"
            line += f" on {self.workers} workers" if self.workers > 1 else ""
        return line
