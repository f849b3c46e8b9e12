"""Regularized (aging) evolution, Real et al., AAAI 2019."""

from __future__ import annotations

from collections import deque
from typing import Any

from benchtool import hookimpl
from benchtool.contracts.nas import Architecture, SearchStrategy, Trial
from benchtool.errors import HyperparameterError


class RegularizedEvolution(SearchStrategy):
    """Aging evolution (Real et al. 2019): a population of the ``population_size`` most
    recently told architectures; each child mutates one decision of the best of
    ``sample_size`` random members; the oldest member dies.

    Defaults follow the BANANAS experiments whose pattern we compare against
    (White et al., AAAI 2021: population 30, tournament 10); Real et al. used 100 and 25
    for 20,000 models. Until ``population_size`` architectures were asked, children are
    random. Failed evaluations never enter the population; tells in any order are fine
    (the population ages in tell order, as with Real et al.'s asynchronous workers).
    """

    name = "regularized-evolution"
    defaults = {"population_size": 30, "sample_size": 10}

    def __init__(self, **hyperparams: Any) -> None:
        super().__init__(**hyperparams)
        size, sample = self.params["population_size"], self.params["sample_size"]
        if not (isinstance(size, int) and isinstance(sample, int) and 1 <= sample <= size):
            raise HyperparameterError(
                f"{self.name}: need integers 1 <= sample_size <= population_size, got sample_size={sample!r}, "
                f"population_size={size!r}"
            )

    def setup(self) -> None:
        self._population: deque[tuple[Architecture, float]] = deque(maxlen=self.params["population_size"])
        self._random_left = self.params["population_size"]

    def propose(self) -> Architecture:
        if self._random_left > 0 or not self._population:
            self._random_left -= 1
            return self.space.draw(self.rng)
        members = self.rng.integers(len(self._population), size=self.params["sample_size"])
        parent = max((self._population[i] for i in members), key=lambda member: member[1])
        return self.space.mutate(parent[0], self.rng)

    def observe(self, trial: Trial, reward: float | None) -> None:
        if reward is not None:
            self._population.append((trial.arch, reward))  # a full deque drops its oldest


@hookimpl
def benchtool_register_strategies(registry) -> None:  # noqa: ANN001 - a benchtool.registry.Registrar
    """Add regularized evolution."""
    registry.add(RegularizedEvolution)
