"""Deadlines for code the harness calls but does not trust to return (a strategy's
``propose``, a child network's training).

A watchdog thread raises :class:`DeadlineExceeded` inside the guarded thread when its
time is up (CPython's ``PyThreadState_SetAsyncExc``), so a search always ends (NNI #4891:
experiments that never stop). It derives from BaseException so a plugin's ``except
Exception`` cannot swallow it. Code blocked inside one long C call (``time.sleep``, a
lock) is interrupted only when that call returns.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

POLL_SECONDS = 0.02
IDLE_EXIT_SECONDS = 1.0  # the watchdog thread ends after this long without a deadline


class DeadlineExceeded(BaseException):
    """Raised asynchronously in a thread whose deadline passed."""


class TimedOut(Exception):
    """A guarded call ran past its deadline (the message says what and how long)."""


@dataclass
class _Slot:
    thread_id: int
    deadline: float
    fired: bool = False


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None)


class Watchdog:
    """One daemon thread that polls the active deadlines while any is set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[int, _Slot] = {}
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    @contextmanager
    def limit(self, seconds: float | None, what: str) -> Iterator[None]:
        """Run the block within ``seconds`` (None: no limit); raises :class:`TimedOut`."""
        if seconds is None:
            yield
            return
        if seconds <= 0:
            raise ValueError(f"{what}: timeout must be > 0 seconds, got {seconds}")
        token = next(self._tokens)
        slot = _Slot(threading.get_ident(), time.monotonic() + seconds)
        with self._lock:
            self._slots[token] = slot
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="benchtool-watchdog", daemon=True)
                self._thread.start()
        try:
            yield
        except DeadlineExceeded:
            if not slot.fired:  # an enclosing deadline's: let it reach its own block
                raise
            raise TimedOut(f"{what} did not return within {seconds:g} s") from None
        finally:
            with self._lock:
                del self._slots[token]
                if slot.fired:
                    _set_async_exc(slot.thread_id, None)  # drop an exception not yet delivered

    def _run(self) -> None:
        idle_since = time.monotonic()
        while True:
            time.sleep(POLL_SECONDS)
            now = time.monotonic()
            with self._lock:
                if self._slots:
                    idle_since = now
                elif now - idle_since >= IDLE_EXIT_SECONDS:
                    self._thread = None
                    return
                for slot in self._slots.values():
                    if not slot.fired and now >= slot.deadline:
                        slot.fired = True
                        _set_async_exc(slot.thread_id, DeadlineExceeded)


WATCHDOG = Watchdog()


def time_limit(seconds: float | None, what: str):
    """``with time_limit(5, "strategy 'x' propose"):`` — the process-wide watchdog."""
    return WATCHDOG.limit(seconds, what)
