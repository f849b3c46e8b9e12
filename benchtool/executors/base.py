"""The executor contract: run picklable calls somewhere, each with a resource request.

An executor hands back a standard :class:`concurrent.futures.Future` per call, so
callers wait with ``concurrent.futures.wait`` / ``as_completed`` whatever runs the
call: results may arrive in any order. A call that raised, or whose worker died after
its retries, ends in a future holding the exception — never a silently missing result.
"""

from __future__ import annotations

import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Any, ClassVar

from benchtool.errors import UsageError, last_line


@dataclass(frozen=True)
class Resources:
    """What one call needs while it runs: CPU cores and GPUs (fractions allowed)."""

    cpus: float = 1.0
    gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.cpus < 0 or self.gpus < 0:
            raise UsageError(f"resources must be >= 0, got cpus={self.cpus}, gpus={self.gpus}")


@dataclass(frozen=True)
class Outcome:
    """How one call ended: its value, or the failure that ended it (type and last line)."""

    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def of(cls, future: Future) -> Outcome:
        """The outcome of a finished future; its exception becomes ``error``."""
        exc = future.exception()
        if exc is None:
            return cls(value=future.result())
        return cls(error=describe_failure(exc))


def describe_failure(exc: BaseException) -> str:
    """One line naming what went wrong (the exception type and its message's last line)."""
    return last_line(" ".join(traceback.format_exception_only(type(exc), exc)), limit=10_000) or repr(exc)


class Executor(ABC):
    """Where benchtool runs independent calls: suite cells, ensemble members, NAS trials.

    A registered executor (:class:`~benchtool.executors.registry.ExecutorRegistry`) owns its
    command-line options: it declares them (:meth:`add_options`), checks their values
    (:meth:`settings`) and is built from them (:meth:`create`)."""

    name: ClassVar[str]
    runs_cells: ClassVar[bool] = True  # the suite's cells are shipped to it (False: pytest runs them here)

    @classmethod
    def add_options(cls, group: Any) -> None:
        """Declare this executor's own options on the ``benchtool`` pytest option group."""

    @classmethod
    def settings(cls, getoption: Callable[[str], Any]) -> dict[str, Any]:
        """This executor's option values, checked before any work (a UsageError names the bad one)."""
        return {}

    @classmethod
    def create(cls, settings: Mapping[str, Any]) -> Executor:
        """A new executor of this kind for a run with ``settings``."""
        return cls()

    @abstractmethod
    def submit(self, fn: Callable[..., Any], /, *args: Any, resources: Resources | None = None,
               retries: int = 0, **kwargs: Any) -> Future:
        """Start ``fn(*args, **kwargs)``; ``retries`` re-runs it if its worker dies."""

    @abstractmethod
    def capacity(self) -> Resources:
        """Every CPU core and GPU this executor can use at once."""

    def slots(self, resources: Resources | None = None) -> int:
        """How many calls needing ``resources`` can run at once (at least 1): how many a
        caller such as an ask/tell search keeps in flight."""
        need = resources or Resources()
        total = self.capacity()
        fits = [int(total.cpus // need.cpus)] if need.cpus > 0 else []
        if need.gpus > 0:
            fits.append(int(total.gpus // need.gpus))
        return max(1, min(fits)) if fits else 1

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *, resources: Resources | None = None,
            retries: int = 0) -> list[Outcome]:
        """``fn(item)`` for every item, run in parallel; outcomes in the order of ``items``."""
        futures = [self.submit(fn, item, resources=resources, retries=retries) for item in items]
        wait(futures)
        return [Outcome.of(f) for f in futures]

    def close(self) -> None:
        """Cancel the calls this executor started that have not finished."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def check_retries(retries: int) -> int:
    if not isinstance(retries, int) or retries < 0:
        raise UsageError(f"retries must be an integer >= 0, got {retries!r}")
    return retries
