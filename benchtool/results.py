"""Results as data: every recorded figure is one flat :class:`Record`.

The JSON schema (``--bt-json``) is a list of ``Record.to_json()`` objects. A scalar
figure has a number in ``value``; a curve (learning curve, accuracy-vs-eps, ...) has
``value`` null and its points in ``series`` = ``{"x": [...], "y": [...], "x_label",
"y_label"}``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchtool.errors import UsageError

RECORD_FIELDS = (
    "suite", "case", "kind", "plugin", "model", "dataset",
    "params", "metric", "value", "unit", "seed", "device", "series",
)


@dataclass(frozen=True)
class Record:
    """One measured figure of one case."""

    suite: str
    case: str
    kind: str
    plugin: str
    model: str
    dataset: str
    params: dict[str, Any]
    metric: str
    value: float | None
    unit: str
    seed: int
    device: str
    series: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.series is None:
            if self.value is None or not isinstance(self.value, (int, float)):
                raise ValueError(f"record {self.metric!r}: value must be a number, got {self.value!r}")
        else:
            xs, ys = self.series.get("x"), self.series.get("y")
            if xs is None or ys is None or len(xs) != len(ys):
                raise ValueError(f"series {self.metric!r}: needs 'x' and 'y' of equal length")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if data["value"] is not None and not math.isfinite(data["value"]):
            data["value"] = str(data["value"])  # JSON has no nan/inf; keep it readable
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        missing = [k for k in RECORD_FIELDS if k not in data and k != "series"]
        if missing:
            raise ValueError(f"record is missing fields {missing}: {data!r}")
        value = data["value"]
        if isinstance(value, str):
            value = float(value)
        return cls(**{**{k: data.get(k) for k in RECORD_FIELDS}, "value": value})


@dataclass
class CaseResult:
    """One finished case (one test): its outcome and the records it made."""

    nodeid: str
    suite: str
    outcome: str  # "passed" | "failed" | "skipped"
    duration: float
    records: list[Record] = field(default_factory=list)
    message: str = ""


def check_writable(path: str | Path, option: str, example: str = "results.json") -> Path:
    """Raise a one-line :class:`UsageError` now, before any work, unless ``path`` can be written
    later: not a folder, not a read-only file, and its nearest existing folder is one we may
    write in (missing folders are created when the file is written). Creates nothing."""
    target = Path(path).expanduser()
    where = f"{option} {path}"
    if target.is_dir():
        raise UsageError(f"{where} is a directory; expected a file name such as {target / example}")
    if target.exists() and not os.access(target, os.W_OK):
        raise UsageError(f"{where}: the file is read-only")
    check_creatable(target, where)
    return target


def check_creatable(path: Path, where: str) -> None:
    """Raise unless ``path`` can be created: its nearest existing folder is one we may write in."""
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{where}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{where}: no permission to write in {folder}")


def write_text_atomically(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file of its own, renamed into place: a
    reader never sees half a file, and writers of one path never collide (the last one wins)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as handle:  # "x": a fresh file, permissions from the umask
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | Path, records: list[Record]) -> None:
    """Write records atomically as a JSON list (the documented schema)."""
    write_text_atomically(path, json.dumps([r.to_json() for r in records], indent=1))


def read_json(path: str | Path) -> list[Record]:
    """Read a ``--bt-json`` file back into records."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return [Record.from_json(item) for item in data]
