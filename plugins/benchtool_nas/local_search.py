"""Local search, White, Nolen, Savani (UAI 2021): "Local Search is State of the Art for
Neural Architecture Search Benchmarks"."""

from __future__ import annotations

from typing import Any

from benchtool import hookimpl
from benchtool.contracts.nas import Architecture, SearchStrategy, Trial
from benchtool.errors import HyperparameterError

FAILED = float("-inf")


class LocalSearch(SearchStrategy):
    """Hill climbing over one-decision neighbourhoods (White et al. 2021): start from the
    best of ``initial_samples`` random architectures, evaluate every neighbour of the
    current one, move to the best if it improves, else restart from a random one.

    ``initial_samples`` = 10 follows the BANANAS/naszilla code's ``num_init``. While a
    neighbourhood's results are still outstanding (parallel workers, tells out of
    order), asks are served with unseen random architectures.
    """

    name = "local-search"
    defaults = {"initial_samples": 10}

    def __init__(self, **hyperparams: Any) -> None:
        super().__init__(**hyperparams)
        initial = self.params["initial_samples"]
        if not isinstance(initial, int) or initial < 1:
            raise HyperparameterError(f"{self.name}: initial_samples must be an integer >= 1, got {initial!r}")

    def setup(self) -> None:
        self._known: dict[Architecture, float] = {}  # told: best reward (FAILED when it failed)
        self._asked: set[Architecture] = set()
        self._restart_left = self.params["initial_samples"]  # random samples still to ask
        self._restart_batch: set[Architecture] = set()
        self._current: Architecture | None = None
        self._neighbourhood: list[Architecture] = []
        self._queue: list[Architecture] = []

    def propose(self) -> Architecture:
        if self._restart_left > 0:
            self._restart_left -= 1
            arch = self._random_unseen()
            self._restart_batch.add(arch)
            return arch
        while self._queue:
            arch = self._queue.pop()
            if arch not in self._asked:
                self._asked.add(arch)
                return arch
        return self._random_unseen()

    def observe(self, trial: Trial, reward: float | None) -> None:
        value = FAILED if reward is None else reward
        self._known[trial.arch] = max(value, self._known.get(trial.arch, FAILED))
        if self._restart_left > 0 or any(a not in self._known for a in self._restart_batch):
            return  # the restart's random samples are still out
        if self._current is None:
            self._climb_from_restart()
        elif not self._queue and all(n in self._known for n in self._neighbourhood):
            best = max(self._neighbourhood, key=lambda n: self._known[n], default=None)
            if best is not None and self._known[best] > self._known[self._current]:
                self._move_to(best)
            else:  # a local optimum: restart from a random architecture
                self._current, self._neighbourhood, self._restart_left = None, [], 1

    def _climb_from_restart(self) -> None:
        best = max(sorted(self._restart_batch), key=lambda a: self._known[a], default=None)
        self._restart_batch = set()
        if best is None or self._known[best] == FAILED:
            self._restart_left = 1
            return
        self._move_to(best)

    def _move_to(self, arch: Architecture) -> None:
        self._current = arch
        self._neighbourhood = self.space.neighbours(arch, self.rng)
        order = self.rng.permutation(len(self._neighbourhood))
        self._queue = [self._neighbourhood[i] for i in order if self._neighbourhood[i] not in self._asked]

    def _random_unseen(self) -> Architecture:
        arch = self.space.draw_unseen(self.rng, self._asked)
        self._asked.add(arch)
        return arch


@hookimpl
def benchtool_register_strategies(registry) -> None:  # noqa: ANN001 - a benchtool.registry.Registrar
    """Add local search."""
    registry.add(LocalSearch)
