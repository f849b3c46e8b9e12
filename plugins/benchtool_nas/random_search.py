"""Random search: the baseline every NAS method must beat (Li & Talwalkar, UAI 2019)."""

from __future__ import annotations

from benchtool import hookimpl
from benchtool.contracts.nas import Architecture, SearchStrategy, Trial


class RandomSearch(SearchStrategy):
    """Uniform random architectures, without repeats while unseen ones are easy to find
    (Li & Talwalkar 2019; Ying et al. 2019 use it as the NAS-Bench-101 baseline)."""

    name = "random-search"

    def setup(self) -> None:
        self._asked: set[Architecture] = set()

    def propose(self) -> Architecture:
        arch = self.space.draw_unseen(self.rng, self._asked)
        self._asked.add(arch)
        return arch

    def observe(self, trial: Trial, reward: float | None) -> None:
        """Random search ignores rewards."""


@hookimpl
def benchtool_register_strategies(registry) -> None:  # noqa: ANN001 - a benchtool.registry.Registrar
    """Add random search."""
    registry.add(RandomSearch)
