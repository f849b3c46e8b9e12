"""The run's configuration, shared by the pytest bridge, the CLI and plugins."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from benchtool.errors import UsageError, choices_error

BUDGETS = ("small", "default", "full")
T = TypeVar("T")


def resolve_device(spec: str) -> torch.device:
    """``auto`` (a GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``."""
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or (spec.startswith("cuda:") and spec[5:].isdigit()):
        if not torch.cuda.is_available():
            raise UsageError(f"--bt-device {spec}: no CUDA device is available here; use 'auto' or 'cpu'")
        index = int(spec[5:]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise UsageError(
                f"--bt-device {spec}: only {torch.cuda.device_count()} CUDA device(s) here (cuda:0..)"
            )
        return torch.device("cuda", index)
    raise UsageError(f"invalid --bt-device {spec!r}; expected one of: auto, cpu, cuda, cuda:N")


def check_budget(budget: str) -> str:
    if budget not in BUDGETS:
        raise choices_error("budget", budget, BUDGETS)
    return budget


def parse_name_list(value: str | None) -> list[str] | None:
    """A comma list of names; None when not given."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    return names or None


def parse_float_list(option: str, value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"invalid {option} {value!r}; expected comma-separated numbers like 0,0.1,0.2") from None


def default_data_root() -> Path:
    return Path(os.environ.get("BENCHTOOL_DATA", Path.home() / ".cache" / "benchtool" / "data"))


@dataclass
class RunConfig:
    """Everything a case needs to know about the run it belongs to."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    budget: str = "default"
    seed: int = 0
    filters: dict[str, list[str] | None] = field(default_factory=dict)  # kind -> names
    data_root: Path = field(default_factory=default_data_root)
    download: bool = False
    json_path: Path | None = None
    eps: list[float] | None = None
    checkpoint: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)  # plugin-added options
    executor: str = "local"  # where fanned-out calls run: local | ray (benchtool.executors)
    ray_address: str | None = None  # the Ray cluster for executor "ray"; None starts a local one

    def pick(self, *, small: T, default: T, full: T) -> T:
        """The value for this run's budget."""
        return {"small": small, "default": default, "full": full}[self.budget]
