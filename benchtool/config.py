"""The run's configuration, shared by the pytest bridge, the CLI and plugins."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from benchtool.errors import UsageError, choices_error

if TYPE_CHECKING:
    from benchtool.executors.base import Executor

BUDGETS = ("small", "default", "full")
# torch's intra-op threads in every cell when --bt-torch-threads is not given, per budget; None:
# torch's count in the process that starts the run. ``small`` runs digits-sized networks, where
# a second thread costs more than it gives: on a 2-core CPU with other work beside it, training
# lenet on digits took 1.8 s on one thread and 13-15 s on two (OpenMP waits for the busier core).
BUDGET_TORCH_THREADS: dict[str, int | None] = {"small": 1, "default": None, "full": None}
SEED_MAX = 2**32 - 1  # NumPy's legacy seeding takes no more; torch takes any of these
EPS_EXAMPLE = "0,0.05,0.1"
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


def check_seed(seed: int, option: str = "--bt-seed") -> int:
    """A seed every generator takes: a whole number from 0 to 2**32 - 1."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise UsageError(f"invalid {option} {seed}; expected a whole number from 0 to {SEED_MAX}")
    return seed


def parse_float_list(option: str, value: str | None, example: str = "0,0.1,0.2") -> list[float] | None:
    """A comma list of numbers; None when not given. Every item must be a number: an empty
    list (``,``) or an empty item (``0,,1``) is an error, not silently dropped."""
    if value is None:
        return None
    expected = f"expected comma-separated numbers like {example}"
    items = [v.strip() for v in value.split(",")]
    if not any(items):
        raise UsageError(f"invalid {option} {value!r}: no number in it; {expected}")
    numbers = []
    for item in items:
        if not item:
            raise UsageError(f"invalid {option} {value!r}: an empty item between commas; {expected}")
        try:
            numbers.append(float(item))
        except ValueError:
            raise UsageError(f"invalid {option} {value!r}: {item!r} is not a number; {expected}") from None
    return numbers


def parse_eps_list(value: str | None, option: str = "--bt-eps") -> list[float] | None:
    """``--bt-eps``: distinct finite numbers >= 0 (how large they may be depends on the data and
    the attack's norm: :func:`check_eps_range`, once the cells are known)."""
    numbers = parse_float_list(option, value, EPS_EXAMPLE)
    if numbers is None:
        return None
    expected = f"expected finite numbers >= 0 like {EPS_EXAMPLE}"
    for eps in numbers:
        if not math.isfinite(eps) or eps < 0:
            what = "not a finite number" if not math.isfinite(eps) else "negative"
            raise UsageError(f"invalid {option} {value!r}: eps {eps:g} is {what}; {expected}")
    repeated = sorted({eps for eps in numbers if numbers.count(eps) > 1})
    if repeated:
        raise UsageError(f"invalid {option} {value!r}: eps {repeated[0]:g} is given twice; {expected}, each once")
    return numbers


def eps_limit(norm: str, bounds: tuple[float, float], input_shape: Sequence[int]) -> float | None:
    """The largest meaningful eps for an attack in ``norm`` on inputs in the box ``bounds``:
    the box's diameter in that norm (Linf: high - low; L2: that times sqrt(#values); L1: times
    #values). A ball that wide already holds every valid input. None for another norm."""
    low, high = bounds
    values = math.prod(input_shape)
    scale = {"linf": 1.0, "l2": math.sqrt(values), "l1": float(values)}.get(norm)
    return None if scale is None else (high - low) * scale


def check_eps_range(eps: Sequence[float], *, norm: str, info: Any, attack: str, option: str = "--bt-eps") -> None:
    """Every eps within :func:`eps_limit` of the dataset ``info`` (a DatasetInfo) in the norm
    of ``attack``; the one-line error names both, the data range and the largest valid eps."""
    limit = eps_limit(norm, info.bounds, info.input_shape)
    if limit is None:
        return
    too_large = [e for e in eps if e > limit * (1 + 1e-9)]
    if not too_large:
        return
    low, high = info.bounds
    box = f"inputs in [{low:g}, {high:g}]" + ("" if norm == "linf" else f" over {math.prod(info.input_shape)} values")
    raise UsageError(
        f"invalid {option} {too_large[0]:g} for attack {attack!r} ({norm}) on dataset {info.name!r} ({box}): "
        f"expected {norm} eps from 0 to {limit:g}, the {norm} diameter of the data box"
    )


DATA_ENV = "BENCHTOOL_DATA"
# Folders searched after the user's own: where distributions install datasets (Debian's
# dataset-fashion-mnist puts the original files in /usr/share/datasets/fashion-mnist).
# $BENCHTOOL_SYSTEM_DATA (a os.pathsep list; empty: none) replaces them, e.g. for hermetic tests.
SYSTEM_DATA_ENV = "BENCHTOOL_SYSTEM_DATA"
SYSTEM_DATA_ROOTS: tuple[Path, ...] = (Path("/usr/share/datasets"),)


def system_data_roots() -> list[Path]:
    """``$BENCHTOOL_SYSTEM_DATA`` when set, else :data:`SYSTEM_DATA_ROOTS`."""
    value = os.environ.get(SYSTEM_DATA_ENV)
    if value is None:
        return list(SYSTEM_DATA_ROOTS)
    return [Path(part) for part in value.split(os.pathsep) if part]


def user_data_root() -> Path:
    """``~/.cache/benchtool/data``: the per-user folder of datasets."""
    return Path.home() / ".cache" / "benchtool" / "data"


def default_data_root() -> Path:
    """The first data root when ``--bt-data-root`` is not given, where downloads go:
    ``$BENCHTOOL_DATA``, else ``~/.cache/benchtool/data``."""
    return Path(os.environ.get(DATA_ENV) or user_data_root())


def data_search_path(root: Path | str | None = None) -> list[Path]:
    """The folders a dataset's files are looked for in, in order: ``root`` (``--bt-data-root``),
    ``$BENCHTOOL_DATA``, ``~/.cache/benchtool/data``, then :func:`system_data_roots`
    (``/usr/share/datasets``); each once. Downloads go to the first."""
    candidates = [Path(root)] if root is not None else []
    if os.environ.get(DATA_ENV):
        candidates.append(Path(os.environ[DATA_ENV]))
    candidates += [user_data_root(), *system_data_roots()]
    roots: list[Path] = []
    for candidate in candidates:
        candidate = candidate.expanduser()
        if candidate not in roots:
            roots.append(candidate)
    return roots


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
    executor: str = "local"  # where cells and fanned-out calls run: local, ray or a plugin's (benchtool.executors)
    executor_settings: dict[str, Any] = field(default_factory=dict)  # its own options' values (ray: address)
    executor_class: type[Executor] | None = None  # the registered class; None: the built-in named ``executor``

    def pick(self, *, small: T, default: T, full: T) -> T:
        """The value for this run's budget."""
        return {"small": small, "default": default, "full": full}[self.budget]
