"""Evaluators turn an architecture into a reward; the harness owns them, not the strategy.

:class:`TabularEvaluator` answers from a space's shipped table and charges the recorded
training time to a simulated clock (NAS-Bench-101 style, Ying et al. 2019);
:class:`TrainingEvaluator` really trains the child network and caches by canonical key.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch

from benchtool.contracts.data import DataBundle
from benchtool.contracts.model import TrainRecipe
from benchtool.contracts.nas import Architecture, SearchSpace
from benchtool.errors import UsageError
from benchtool.harness.nas.deadline import TimedOut, time_limit
from benchtool.harness.nas.table import NasTable

Status = Literal["ok", "failed", "timeout"]


@dataclass(frozen=True)
class Evaluation:
    """One evaluation's outcome. ``test_accuracy`` is for the report only: the strategy
    is told the validation accuracy alone."""

    status: Status
    val_accuracy: float | None
    test_accuracy: float | None
    cost_seconds: float  # charged to the search's clock (simulated for tables)
    params: int | None = None
    cached: bool = False
    detail: str = ""

    @property
    def reward(self) -> float | None:
        return self.val_accuracy if self.status == "ok" else None

    @classmethod
    def failed(cls, detail: str, cost_seconds: float = 0.0, status: Status = "failed") -> Evaluation:
        return cls(status, None, None, cost_seconds, detail=detail)


class Evaluator(ABC):
    """Evaluates canonical architectures of one space."""

    space: SearchSpace

    @abstractmethod
    def evaluate(self, arch: Architecture, *, trial_seed: int = 0, timeout: float | None = None) -> Evaluation:
        """Evaluate ``arch``; ``trial_seed`` draws whatever is random about one evaluation,
        ``timeout`` (seconds on this evaluator's clock) bounds it."""


@lru_cache(maxsize=8)
def _load_table(path: str) -> NasTable:
    return NasTable.load(path)


class TabularEvaluator(Evaluator):
    """Looks results up in a table: each query returns one training seed's validation
    accuracy (picked by ``trial_seed``), the mean test accuracy over seeds, and charges
    that seed's recorded training time."""

    def __init__(self, space: SearchSpace, table: NasTable | None = None) -> None:
        if table is None:
            path = space.table_path()
            if path is None:
                raise UsageError(f"search space {space.name!r} has no table; use TrainingEvaluator")
            table = _load_table(str(path))
        table.check_space(space)
        self.space = space
        self.table = table
        self._mean_test = table.mean_test

    def evaluate(self, arch: Architecture, *, trial_seed: int = 0, timeout: float | None = None) -> Evaluation:
        table = self.table
        row = table.row(self.space.key(arch))
        seed = trial_seed % table.num_seeds
        seconds = float(table.train_seconds[row, seed])
        params = int(table.params[row])
        if timeout is not None and seconds > timeout:
            return Evaluation("timeout", None, None, float(timeout), params, detail=f"recorded {seconds:.3g} s")
        return Evaluation("ok", float(table.val_accuracy[row, seed]), float(self._mean_test[row]), seconds, params)

    def test_accuracy(self, arch: Architecture) -> float:
        """The architecture's mean test accuracy over the table's seeds."""
        return float(self._mean_test[self.table.row(self.space.key(arch))])


class TrainingEvaluator(Evaluator):
    """Trains the child network (``space.build``) on ``bundle`` with ``recipe`` on
    ``device`` through the zoo trainer, seeded by ``train_seed``; results are cached by
    canonical key, in memory and, with ``cache_file``, in a JSON-lines file that
    survives the process (the table generator resumes from it). ``clock="cpu"`` charges
    the training thread's CPU time instead of wall time: the same on an idle machine,
    and stable on a shared one (single-threaded CPU training only)."""

    def __init__(
        self,
        space: SearchSpace,
        bundle: DataBundle,
        recipe: TrainRecipe,
        *,
        device: torch.device | str = "cpu",
        train_seed: int = 0,
        cache_file: str | Path | None = None,
        clock: Literal["wall", "cpu"] = "wall",
    ) -> None:
        if clock not in ("wall", "cpu"):
            raise UsageError(f"TrainingEvaluator clock {clock!r}; expected 'wall' or 'cpu'")
        self.space = space
        self.bundle = bundle
        self.recipe = recipe
        self.device = torch.device(device)
        self.train_seed = int(train_seed)
        self.clock = clock
        self.cache_file = Path(cache_file) if cache_file is not None else None
        self._cache: dict[str, Evaluation] = {}
        self._lock = threading.Lock()
        if self.cache_file is not None and self.cache_file.is_file():
            self._cache.update(self._read_cache(self.cache_file))

    def __getstate__(self) -> dict[str, object]:
        """Picklable for executors that run evaluations in other processes (Ray): the
        lock stays behind, the cache travels as it is."""
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def evaluate(self, arch: Architecture, *, trial_seed: int = 0, timeout: float | None = None) -> Evaluation:
        from benchtool.executors import task_device
        from benchtool.models import TrainingError, evaluate, train

        device = task_device(self.device)  # the GPU an executor's task was given, if any
        key = self.space.key(arch)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return Evaluation(hit.status, hit.val_accuracy, hit.test_accuracy, 0.0, hit.params, cached=True)
        info = self.bundle.info
        with torch.random.fork_rng(devices=[]):  # initial weights depend on the seed alone
            torch.manual_seed(self.train_seed)
            model = self.space.build(arch, info)
        params = sum(p.numel() for p in model.parameters())
        cpu_started = time.thread_time()
        try:
            with time_limit(timeout, f"training {self.space.name} {key}"):
                history = train(model, self.bundle, self.recipe, seed=self.train_seed, device=device,
                                progress=False, label=key)
        except TimedOut as exc:
            return Evaluation("timeout", None, None, float(timeout or 0.0), params, detail=str(exc))
        except TrainingError as exc:
            return Evaluation("failed", None, None, 0.0, params, detail=str(exc))
        val_accuracy = history.val_accuracy[-1]  # train() scored the final weights on val, in eval mode
        _, test_accuracy = evaluate(model, self.bundle.test, info.task, device)
        seconds = time.thread_time() - cpu_started if self.clock == "cpu" else history.seconds
        result = Evaluation("ok", val_accuracy, test_accuracy, seconds, params)
        self._store(key, result)
        return result

    def recorded(self, arch: Architecture) -> Evaluation | None:
        """The cached result of ``arch`` as first measured (its real training seconds)."""
        with self._lock:
            return self._cache.get(self.space.key(arch))

    def _store(self, key: str, result: Evaluation) -> None:
        with self._lock:
            self._cache[key] = result
            if self.cache_file is not None:
                line = {**self._identity(), "key": key, **asdict(result)}
                with self.cache_file.open("a") as handle:
                    handle.write(json.dumps(line) + "\n")

    def _identity(self) -> dict[str, object]:
        """What a cached result depends on besides the architecture."""
        return {"space": self.space.name, "dataset": self.bundle.info.name, "recipe": self.recipe.as_dict(),
                "train_seed": self.train_seed, "clock": self.clock}

    def _read_cache(self, path: Path) -> dict[str, Evaluation]:
        """Completed evaluations of this space, dataset, recipe and seed; a torn last
        line (a killed writer) is skipped."""
        identity = self._identity()
        found = {}
        for line in path.read_text().splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue
            if all(item.get(k) == v for k, v in identity.items()):
                fields = {k: item[k] for k in Evaluation.__dataclass_fields__ if k in item}
                found[item["key"]] = Evaluation(**fields)
        return found
