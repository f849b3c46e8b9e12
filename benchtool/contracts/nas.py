"""NAS contracts: a :class:`SearchSpace` is a walk of decisions; a :class:`SearchStrategy`
is asked for architectures and told their rewards (ask/tell, as in Optuna).

An architecture is a canonical tuple of choice indices, one per decision taken along the
space's walk, so the same network always has the same, hashable encoding (NNI #2721:
decisions that do not matter for a network must not be part of its encoding). A
controller (Zoph & Le, ICLR 2017) emits the decisions one at a time by following
:meth:`SearchSpace.next_decision`.

The harness owns the loop, the budget, the seeds and the timeouts
(:func:`benchtool.harness.nas.run_search`); the strategy implements only ``propose`` and
``observe``. Several asks may be outstanding and rewards may be told in any order.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, final

import numpy as np

from benchtool.contracts._guard import guard
from benchtool.contracts._params import merge_hyperparams
from benchtool.contracts._renamed import Renamed
from benchtool.errors import BenchtoolError, ContractViolation, UsageError

if TYPE_CHECKING:
    from torch import nn

    from benchtool.contracts.data import DatasetInfo

Architecture = tuple[int, ...]
WALK_CACHE_SIZE = 100_000  # memoized walks per space (a few tens of MB at most)


class InvalidArchitecture(ValueError):
    """An encoding that is not a complete walk of the space's decisions."""


class SearchFinished(BenchtoolError):
    """``ask`` was called after the harness told the strategy its budget is spent."""


@dataclass(frozen=True)
class Decision:
    """One decision of the walk: its name and the values it can take."""

    name: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError(f"decision {self.name!r} has no choices")


class SearchSpace(ABC):
    """A space of architectures defined by a walk of decisions.

    A subclass lists every decision in :meth:`decisions` and, when the walk is
    conditional (the number of layers decides how many layer decisions follow),
    overrides :meth:`next_decision`. Sampling, validation, mutation, neighbourhoods,
    enumeration and keys are derived here, once, for every space.
    """

    name: ClassVar[str]

    @abstractmethod
    def decisions(self) -> tuple[Decision, ...]:
        """Every decision the walk can take, in walk order (a controller keeps one
        softmax per decision)."""

    def next_decision(self, prefix: Architecture) -> int | None:
        """The index into :meth:`decisions` of the decision that follows ``prefix``, or
        None when ``prefix`` is complete. The default walks every decision in order."""
        return len(prefix) if len(prefix) < len(self.decision_list) else None

    def build(self, arch: Architecture, info: DatasetInfo) -> nn.Module:
        """The untrained network for ``arch`` (needed by the training evaluator only)."""
        raise UsageError(f"search space {self.name!r} cannot build networks; evaluate it from its table")

    def table_path(self) -> Path | None:
        """The shipped table of every architecture's training results, if tabulated."""
        return None

    def describe(self, arch: Architecture) -> dict[str, Any]:
        """The decision values of ``arch`` by decision name (readable, for reports)."""
        table = self.decision_list
        return {table[d].name: table[d].choices[c] for d, c in zip(self.walk(arch), arch)}

    # --- derived from the walk (the same for every space) -----------------------------

    @cached_property
    def decision_list(self) -> tuple[Decision, ...]:
        """:meth:`decisions`, computed once and checked (names unique)."""
        decisions = tuple(self.decisions())
        names = [d.name for d in decisions]
        if len(set(names)) != len(names):
            raise ValueError(f"search space {self.name!r}: decision names must be unique, got {names}")
        return decisions

    @cached_property
    def _walk_cache(self) -> dict[Architecture, tuple[int, ...]]:
        return {}

    @final
    def walk(self, arch: Sequence[int]) -> tuple[int, ...]:
        """The decision index behind each position of ``arch``; raises
        :class:`InvalidArchitecture` naming the first bad position. Walks of canonical
        tuples are memoized: the harness validates each architecture several times."""
        exact = type(arch) is tuple and all(type(c) is int for c in arch)
        if exact and (hit := self._walk_cache.get(arch)) is not None:
            return hit
        taken = self._walk(arch)
        if exact:
            if len(self._walk_cache) >= WALK_CACHE_SIZE:
                self._walk_cache.clear()
            self._walk_cache[arch] = taken
        return taken

    def _walk(self, arch: Sequence[int]) -> tuple[int, ...]:
        decisions = self.decision_list
        taken: list[int] = []
        for position, choice in enumerate(arch):
            index = self.next_decision(tuple(arch[:position]))
            if index is None:
                raise InvalidArchitecture(
                    f"{self.name}: architecture {tuple(arch)} is complete after {position} decisions, "
                    f"got {len(arch)}"
                )
            n = len(decisions[index].choices)
            if isinstance(choice, bool) or not isinstance(choice, (int, np.integer)) or not 0 <= choice < n:
                raise InvalidArchitecture(
                    f"{self.name}: position {position} ({decisions[index].name}) is {choice!r}, "
                    f"expected an int in [0, {n})"
                )
            taken.append(index)
        if self.next_decision(tuple(arch)) is not None:
            raise InvalidArchitecture(f"{self.name}: architecture {tuple(arch)} is incomplete")
        return tuple(taken)

    @final
    def canonical(self, arch: Sequence[int]) -> Architecture:
        """``arch`` as the canonical tuple of Python ints (validated)."""
        if isinstance(arch, (str, bytes)) or not isinstance(arch, Sequence):
            raise InvalidArchitecture(f"{self.name}: expected a sequence of choice indices, got {arch!r}")
        self.walk(arch)
        return arch if type(arch) is tuple and all(type(c) is int for c in arch) else tuple(int(c) for c in arch)

    @final
    def contains(self, arch: Any) -> bool:
        """Whether ``arch`` is a complete, valid encoding in this space."""
        try:
            self.canonical(arch)
        except InvalidArchitecture:
            return False
        return True

    @final
    def draw(self, rng: np.random.Generator) -> Architecture:
        """A uniformly random choice at every decision of the walk."""
        return self._complete([], {}, rng)

    @final
    def draw_unseen(self, rng: np.random.Generator, seen: set[Architecture], tries: int = 100) -> Architecture:
        """A uniform draw not in ``seen``, drawing up to ``tries`` times before accepting
        a repeat (so a nearly exhausted space never loops forever)."""
        for _ in range(tries):
            arch = self.draw(rng)
            if arch not in seen:
                break
        return arch

    sample, sample_unseen = Renamed("draw"), Renamed("draw_unseen")  # old names: sample is an estimator's verb

    @final
    def mutate(self, arch: Architecture, rng: np.random.Generator) -> Architecture:
        """``arch`` with one decision changed to a different value (Real et al. 2019);
        decisions the change activates are sampled, the others keep their values."""
        arch = self.canonical(arch)
        taken = self.walk(arch)
        options = [p for p, d in enumerate(taken) if len(self.decision_list[d].choices) > 1]
        if not options:
            raise InvalidArchitecture(f"{self.name}: {arch} has no decision with an alternative")
        position = options[int(rng.random() * len(options))]
        n = len(self.decision_list[taken[position]].choices)
        new = (arch[position] + 1 + int(rng.random() * (n - 1))) % n
        return self._complete([*arch[:position], new], dict(zip(taken, arch)), rng)

    @final
    def neighbours(self, arch: Architecture, rng: np.random.Generator | None = None) -> list[Architecture]:
        """Every architecture one decision away from ``arch``, in walk order; decisions
        a change activates take a random value (``rng``) or their first."""
        arch = self.canonical(arch)
        taken = self.walk(arch)
        kept = dict(zip(taken, arch))
        result = []
        for position, decision in enumerate(taken):
            for choice in range(len(self.decision_list[decision].choices)):
                if choice != arch[position]:
                    result.append(self._complete([*arch[:position], choice], kept, rng))
        return result

    @final
    def enumerate(self) -> Iterator[Architecture]:
        """Every architecture of the space, in lexicographic order of the encoding."""
        stack: list[list[int]] = [[]]
        while stack:
            prefix = stack.pop()
            index = self.next_decision(tuple(prefix))
            if index is None:
                yield tuple(prefix)
                continue
            n = len(self.decision_list[index].choices)
            stack.extend([*prefix, c] for c in reversed(range(n)))

    @property
    def size(self) -> int:
        """The number of distinct architectures (subclasses give a closed form)."""
        return sum(1 for _ in self.enumerate())

    @final
    def key(self, arch: Architecture) -> str:
        """A canonical string for ``arch`` (table keys, caches, logs)."""
        return ".".join(str(c) for c in self.canonical(arch))

    @final
    def from_key(self, key: str) -> Architecture:
        """The architecture behind :meth:`key`'s string."""
        try:
            arch = tuple(int(part) for part in key.split(".")) if key else ()
        except ValueError:
            raise InvalidArchitecture(f"{self.name}: {key!r} is not a key like '1.0.2'") from None
        return self.canonical(arch)

    def _complete(self, prefix: list[int], kept: dict[int, int], rng: np.random.Generator | None) -> Architecture:
        """Walk on from ``prefix``: a decision keeps its value from ``kept`` where it has
        one, else takes a random choice (or the first without ``rng``)."""
        decisions = self.decision_list
        while (index := self.next_decision(tuple(prefix))) is not None:
            n = len(decisions[index].choices)
            if index in kept and kept[index] < n:
                prefix.append(kept[index])
            else:
                prefix.append(int(rng.random() * n) if rng is not None else 0)
        return tuple(prefix)


@dataclass(frozen=True)
class Trial:
    """One ask: its number (in ask order) and the canonical architecture asked for."""

    number: int
    arch: Architecture


class SearchStrategy(ABC):
    """A search strategy: ``propose`` an architecture, ``observe`` its reward.

    The harness calls :meth:`start`, then :meth:`ask` / :meth:`tell` (several asks may
    be outstanding; tells arrive in any order; a failed evaluation is told as None),
    and :meth:`finish` when the budget is spent. Every random draw uses ``self.rng``
    (or a generator seeded from ``self.seed``), so a seed fixes the trajectory.
    Hyper-parameters are declared in ``defaults`` and overridable as keywords.
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **hyperparams: Any) -> None:
        self.params: dict[str, Any] = merge_hyperparams("strategy", self.name, self.defaults, hyperparams)
        self.__space: SearchSpace | None = None
        self.__outstanding: dict[int, Trial] = {}
        self.__asks = 0
        self.__finished = False

    # --- the plugin's narrow methods --------------------------------------------------

    def setup(self) -> None:
        """Prepare state once ``self.space``, ``self.seed`` and ``self.rng`` are bound."""

    @abstractmethod
    def propose(self) -> Architecture:
        """The next architecture to evaluate, canonical (``self.space.canonical``)."""

    @abstractmethod
    def observe(self, trial: Trial, reward: float | None) -> None:
        """The reward (validation accuracy) of an asked trial; None when its evaluation
        failed or timed out. Trials may be told in any order."""

    # --- harness-side ------------------------------------------------------------------

    @property
    def space(self) -> SearchSpace:
        if self.__space is None:
            raise UsageError(f"strategy {self.name!r} was not started; call start(space, seed) first")
        return self.__space

    @property
    def outstanding(self) -> tuple[Trial, ...]:
        """Trials asked and not yet told, in ask order."""
        return tuple(self.__outstanding.values())

    @property
    def finished(self) -> bool:
        return self.__finished

    @final
    def start(self, space: SearchSpace, seed: int, *, timeout: float | None = None) -> None:
        """Bind the space and the seed, then let the plugin set up. Each call into the plugin
        (``setup``, ``propose``, ``observe``) runs under the harness's guard: it must return
        within ``timeout`` seconds (default: the run's limit for the call) and an exception
        of its own is reported as ``plugin 'x' raised ...``."""
        if self.__space is not None:
            raise UsageError(f"strategy {self.name!r} was already started; create a fresh instance per search")
        if not isinstance(space, SearchSpace):
            raise UsageError(f"strategy {self.name!r}: expected a SearchSpace, got {type(space).__name__}")
        self.__space = space
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        with guard(self.name, "strategies", "setup", timeout):
            self.setup()

    @final
    def ask(self, *, timeout: float | None = None) -> Trial:
        """A new trial; ContractViolation when the plugin proposes an invalid or
        non-canonical encoding, raises or does not return within ``timeout`` seconds,
        :class:`SearchFinished` after :meth:`finish`."""
        space = self.space
        if self.__finished:
            raise SearchFinished(f"strategy {self.name!r} was asked after its budget was spent")
        with guard(self.name, "strategies", "propose", timeout):
            arch = self.propose()
        try:
            canonical = space.canonical(arch)
        except InvalidArchitecture as exc:
            raise ContractViolation(self.name, "valid-architecture", str(exc)) from None
        if not isinstance(arch, tuple) or canonical != arch:
            raise ContractViolation(
                self.name, "canonical-architecture",
                f"proposed {arch!r}, expected the canonical tuple of ints {canonical!r}",
            )
        trial = Trial(self.__asks, canonical)
        self.__asks += 1
        self.__outstanding[trial.number] = trial
        return trial

    @final
    def tell(self, trial: Trial, reward: float | None, *, timeout: float | None = None) -> None:
        """Report an outstanding trial's reward; None or NaN marks a failed evaluation. The
        plugin's ``observe`` runs under the guard, as ``propose`` in :meth:`ask`."""
        if self.__outstanding.get(getattr(trial, "number", None)) != trial:
            raise UsageError(f"strategy {self.name!r}: {trial!r} is not an outstanding trial of this search")
        if reward is not None:
            reward = float(reward)
            if math.isnan(reward):
                reward = None
            elif math.isinf(reward):
                raise UsageError(f"strategy {self.name!r}: reward of trial {trial.number} is {reward}, expected finite")
        del self.__outstanding[trial.number]
        with guard(self.name, "strategies", "observe", timeout):
            self.observe(trial, reward)

    @final
    def finish(self) -> None:
        """The budget is spent: no further ask; outstanding trials may still be told."""
        self.__finished = True
