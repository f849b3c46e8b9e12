"""Random search: the baseline every NAS method must beat (Li & Talwalkar, UAI 2019)."""

from __future__ import annotations

from benchtool import hookimpl
from benchtool.contracts.nas import Architecture, SearchStrategy, Trial

MAX_RESAMPLES = 100  # draws to find an unseen architecture before accepting a repeat


class RandomSearch(SearchStrategy):
    """Uniform random architectures, without repeats while unseen ones are easy to find
    (Li & Talwalkar 2019; Ying et al. 2019 use it as the NAS-Bench-101 baseline)."""

    name = "random-search"

    def setup(self) -> None:
        self._asked: set[Architecture] = set()

    def propose(self) -> Architecture:
        for _ in range(MAX_RESAMPLES):
            arch = self.space.sample(self.rng)
            if arch not in self._asked:
                break
        self._asked.add(arch)
        return arch

    def observe(self, trial: Trial, reward: float | None) -> None:
        """Random search ignores rewards."""


@hookimpl
def benchtool_register_strategies(registry) -> None:  # noqa: ANN001 - a benchtool.registry.Registrar
    """Add random search."""
    registry.add(RandomSearch.name, RandomSearch)
