"""One guard around every call the harness makes into plugin code.

``with guard(plugin, kind, call):`` bounds the call in time and names the plugin in
whatever goes wrong, for every kind (attacks, estimators, strategies, loss weightings,
target functions):

- an exception of the plugin's own code becomes :class:`~benchtool.errors.PluginRaised`, read as
  ``plugin 'x' raised RuntimeError: ...`` (out of memory adds the size it tried);
  :class:`~benchtool.errors.BenchtoolError`\\ s (rule breaks, usage errors) pass as they are;
- a call that does not return within its limit fails with
  ``plugin 'x' broke rule 'returns-in-time': perturb did not return within 120 s``.

The limit comes from the :class:`TimeoutPolicy` (a per-call default scaled by the run's
budget, or ``--bt-timeout``). On the main thread an ``ITIMER_REAL`` alarm raises
:class:`DeadlineExceeded` inside the plugin's frame: it stops ``while True`` and
``time.sleep`` alike and costs two ``setitimer`` calls per guarded call. Elsewhere (another
thread, or SIGALRM owned by someone else) a watchdog thread raises it asynchronously
(``PyThreadState_SetAsyncExc``), which stops Python loops but not a sleep. Code that
ignores both (blocked in native code, the signal masked) meets the hard stage when the
run's harness asked for one (:mod:`benchtool.watchdog`): after a grace period the
watchdog thread reports the failure and ends the process, so a supervisor (pytest-xdist,
``benchtool run``) fails the cell and goes on. Nested guards keep the outer deadline.
(Native code that never returns *and* holds the GIL stops every thread of its process,
the watchdog's included: only a supervisor outside the process could end it.)
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from benchtool._moved import moved_names
from benchtool.errors import BenchtoolError, ContractViolation
from benchtool.errors import PluginRaised as _PluginRaised

POLL_SECONDS = 0.02  # how often the watchdog thread checks deadlines it delivers itself
HARD_POLL_SECONDS = 0.1  # ... and hard deadlines alone
IDLE_EXIT_SECONDS = 5.0  # the watchdog thread ends after this long with nothing to watch
RETRY_SECONDS = 0.001  # an alarm that lands in the guard's own bookkeeping is retried this soon
REFIRE_SECONDS = 0.05  # a deadline the plugin swallowed (``except BaseException``) fires again this soon
CLOCK_SLACK = 1e-3  # the alarm may fire this much before the monotonic deadline
GRACE_FRACTION, GRACE_MIN, GRACE_MAX = 0.5, 1.0, 60.0  # hard stage: after this much more time
EXIT_HUNG = 124  # exit status of a process the hard stage ended (as timeout(1))

# Per-call limits at budget "small", scaled by BUDGET_SCALE; --bt-timeout replaces them all.
CALL_SECONDS: dict[tuple[str, str], float] = {
    ("attacks", "perturb"): 120.0,  # one batch at one eps
    ("attacks", "perturb_sweep"): 300.0,  # one batch, every eps of a sweep (minimum-norm attacks)
    ("estimators", "fit"): 600.0,  # may train ensemble members
    ("estimators", "sample"): 120.0,  # every pass over one split
    ("strategies", "setup"): 120.0,  # a controller may compile kernels on its first start
    ("strategies", "propose"): 10.0,
    ("strategies", "observe"): 10.0,
}
KIND_SECONDS: dict[str, float] = {"loss_weightings": 60.0, "target_functions": 60.0}  # any call
OTHER_SECONDS = 120.0
BUDGET_SCALE: dict[str, float] = {"small": 1.0, "default": 3.0, "full": 10.0}


class DeadlineExceeded(BaseException):
    """Raised inside guarded code whose deadline passed. A BaseException, so a plugin's
    ``except Exception`` cannot swallow it."""

    def __init__(self, slot: _Guard | None = None) -> None:
        super().__init__()
        self.slot = slot


class TimedOut(Exception):
    """A :func:`deadline` block ran past its limit (the message says what and how long)."""


# --- the policy -----------------------------------------------------------------------


@dataclass(frozen=True)
class TimeoutPolicy:
    """How long each plugin call may take, and what ends a call that ignores its deadline.

    ``on_hard_timeout(message)`` is called by the watchdog thread when a call is still
    running a grace period after its deadline; it reports the message where a supervisor
    reads it. The process then ends (status :data:`EXIT_HUNG`). Without it (a library
    user's process) there is no hard stage: the call fails once it returns."""

    budget: str = "default"
    override: float | None = None  # --bt-timeout: every call's limit
    on_hard_timeout: Callable[[str], None] | None = None

    def seconds(self, kind: str, call: str) -> float:
        if self.override is not None:
            return self.override
        base = CALL_SECONDS.get((kind, call), KIND_SECONDS.get(kind, OTHER_SECONDS))
        return base * BUDGET_SCALE.get(self.budget, 1.0)


_policy = TimeoutPolicy()


def current_policy() -> TimeoutPolicy:
    return _policy


def set_policy(policy: TimeoutPolicy) -> TimeoutPolicy:
    """Install ``policy`` for every later guard; returns the previous one (to restore)."""
    global _policy
    previous, _policy = _policy, policy
    return previous


def grace_seconds(seconds: float) -> float:
    """How long past its deadline a call may still run before the hard stage ends it."""
    return min(max(GRACE_MIN, GRACE_FRACTION * seconds), GRACE_MAX)


# --- deadlines ------------------------------------------------------------------------


_HAS_TIMER = hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")
try:
    from _signal import getsignal as _getsignal  # signal.getsignal's enum lookup costs 2 us a call
except ImportError:  # pragma: no cover - another interpreter
    _getsignal = signal.getsignal
_MAIN_THREAD = threading.main_thread().ident
_main_stack: list[_Guard] = []  # the main thread's alarm-driven deadlines, outermost first
_GLOBALS = globals()


class _Guard:
    """One guarded block (the context manager behind :func:`guard` and :func:`deadline`)
    and its deadline while it runs."""

    __slots__ = ("plugin", "what", "seconds", "spent", "on_hard", "deadline", "effective", "hard", "thread_id",
                 "signal_mode", "fired", "closing")

    def __init__(self, plugin: str | None, what: str, seconds: float | None,
                 on_hard: Callable[[str], None] | None, spent: float = 0.0) -> None:
        if seconds is not None and not seconds > 0:
            raise ValueError(f"{what}: timeout must be > 0 seconds, got {seconds}")
        if seconds == math.inf:
            seconds = None
        self.plugin, self.what, self.seconds, self.spent, self.on_hard = plugin, what, seconds, spent, on_hard
        self.fired = self.closing = self.signal_mode = False

    def __enter__(self) -> _Guard:
        seconds = self.seconds
        if seconds is None:
            return self
        left = seconds - self.spent
        if left <= 0:  # earlier parts of the same call used it all up
            self.fired = True
            self._failed(None, None)
        now = time.monotonic()
        self.deadline = self.effective = now + left
        self.thread_id = threading.get_ident()
        if self.on_hard is not None:
            self.hard = self.deadline + grace_seconds(seconds)
            _watchdog.add(self)
        else:
            self.hard = None
        if _alarm_available(self.thread_id):
            self.signal_mode = True
            outer = _main_stack[-1] if _main_stack else None
            if outer is not None and outer.effective < self.effective:
                self.effective = outer.effective  # an inner guard never extends the outer deadline
            _main_stack.append(self)
            if outer is None or self.effective < outer.effective:
                signal.setitimer(signal.ITIMER_REAL, max(self.effective - now, 1e-6))
        elif self.hard is None:
            _watchdog.add(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if self.seconds is not None:
            self.closing = True
            if self.signal_mode:
                if _main_stack[-1] is self:
                    _main_stack.pop()
                else:
                    _main_stack.remove(self)
                if not _main_stack:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                elif self.fired or self.effective < _main_stack[-1].effective:  # put the outer's alarm back
                    signal.setitimer(signal.ITIMER_REAL, max(_main_stack[-1].effective - time.monotonic(), 1e-6))
            if self.hard is not None or not self.signal_mode:
                _watchdog.remove(self)
        if exc_type is None and not self.fired:
            return False
        return self._failed(exc_type, exc)

    def _failed(self, exc_type: type[BaseException] | None, exc: BaseException | None) -> bool:
        """What the block's exception (or late return) becomes; False lets it pass as it is."""
        if exc_type is not None and issubclass(exc_type, DeadlineExceeded):
            owner = exc.slot if exc is not None else None
            if not self.fired or (owner is not None and owner is not self):
                return False  # an enclosing deadline's: it reaches its own block
        if self.fired and not (exc_type is not None and issubclass(exc_type, BenchtoolError)):
            detail = f"{self.what} did not return within {self.seconds:g} s"
            if self.plugin is None:
                raise TimedOut(detail) from None
            raise ContractViolation(self.plugin, "returns-in-time", detail) from None
        if (exc_type is None or self.plugin is None or issubclass(exc_type, BenchtoolError)
                or not issubclass(exc_type, (Exception, SystemExit))):
            return False  # a rule break, a usage error, Ctrl-C, pytest's outcomes: as they are
        raise _PluginRaised(self.plugin, exc) from exc

    def hard_message(self) -> str:
        return (f"plugin {self.plugin!r} broke rule 'returns-in-time': {self.what} did not return within "
                f"{self.seconds:g} s, nor {grace_seconds(self.seconds):g} s after it was interrupted (blocked in "
                "native code or ignoring the interrupt), so its process was ended")


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    """SIGALRM: raise :class:`DeadlineExceeded` for the due deadline inside the running code."""
    if not _main_stack:
        return  # a stray alarm after the last guard closed
    now = time.monotonic()
    due = None
    for slot in _main_stack:
        if not slot.closing and slot.deadline <= now + CLOCK_SLACK and (due is None or slot.deadline < due.deadline):
            due = slot
    if due is None:
        live = [s.effective for s in _main_stack if not s.closing]
        if live:
            signal.setitimer(signal.ITIMER_REAL, max(min(live) - now, 1e-6))
        return
    if frame is not None and frame.f_globals is _GLOBALS:
        signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)  # not inside our own bookkeeping
        return
    due.fired = True
    signal.setitimer(signal.ITIMER_REAL, REFIRE_SECONDS)  # again, should the plugin swallow it
    raise DeadlineExceeded(due)


def _alarm_available(thread_id: int) -> bool:
    """Whether this call can use the alarm: the main thread, and SIGALRM ours or unused
    (pytest-timeout's signal method owns it while a test runs: then the thread watches)."""
    if thread_id != _MAIN_THREAD or not _HAS_TIMER:
        return False
    if _main_stack:
        return True
    handler = _getsignal(signal.SIGALRM)
    if handler is _on_alarm:
        return True
    if handler in (signal.SIG_DFL, None):
        signal.signal(signal.SIGALRM, _on_alarm)  # once per process: it ignores alarms when idle
        return True
    return False


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None)


class _Watchdog:
    """One daemon thread, alive while deadlines need it: it delivers the deadlines of code
    off the main thread and runs the hard stage of every plugin call. Adding and removing
    an alarm-driven guard are single dict operations (atomic under the GIL)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._guards: dict[int, _Guard] = {}
        self._thread: threading.Thread | None = None

    def add(self, guard: _Guard) -> None:
        self._guards[id(guard)] = guard
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="benchtool-watchdog", daemon=True)
                    self._thread.start()

    def remove(self, guard: _Guard) -> None:
        if guard.signal_mode:
            self._guards.pop(id(guard), None)
            return
        with self._lock:  # the thread delivers under the lock: nothing is delivered after this
            self._guards.pop(id(guard), None)
            if guard.fired:
                _set_async_exc(guard.thread_id, None)  # drop an exception not delivered yet

    def _run(self) -> None:
        idle_since = time.monotonic()
        while True:
            hung, asynchronous = None, False
            with self._lock:
                now = time.monotonic()
                guards = list(self._guards.copy().values())
                if guards:
                    idle_since = now
                elif now - idle_since >= IDLE_EXIT_SECONDS:
                    self._thread = None
                    if not self._guards:
                        return
                    self._thread = threading.current_thread()  # one was added meanwhile: keep going
                for guard in guards:
                    if guard.closing:
                        continue
                    if not guard.signal_mode:
                        asynchronous = True
                        if not guard.fired and now >= guard.deadline:
                            guard.fired = True
                            _set_async_exc(guard.thread_id, DeadlineExceeded)
                    if guard.hard is not None and now >= guard.hard:
                        hung = guard
            if hung is not None:
                _hard_stop(hung)
            time.sleep(POLL_SECONDS if asynchronous else HARD_POLL_SECONDS)


def _hard_stop(guard: _Guard) -> None:
    """The hard stage: report, then end the process (its supervisor fails the cell)."""
    try:
        if guard.on_hard is not None:
            guard.on_hard(guard.hard_message())
    finally:
        os._exit(EXIT_HUNG)


_watchdog = _Watchdog()


def guard(plugin: str, kind: str, call: str, seconds: float | None = None, *, spent: float = 0.0) -> _Guard:
    """``with guard(self.name, "attacks", "perturb"):`` around a call into plugin code.

    ``seconds`` (default: the policy's limit for ``kind``/``call``) bounds the call; a call
    made of several parts (the ``next`` of each chunk a lazy ``sample`` yields) passes the
    seconds its earlier parts took as ``spent``. See the module docstring for what an
    exception or a late return becomes."""
    policy = _policy
    limit = policy.seconds(kind, call) if seconds is None else seconds
    return _Guard(plugin, call, limit, policy.on_hard_timeout, spent)


def deadline(seconds: float | None, what: str) -> _Guard:
    """``with deadline(5, "training x"):`` raises :class:`TimedOut` after 5 s (None: no
    limit): the same mechanism as :func:`guard`, for the harness's own code (no hard stage,
    exceptions pass unchanged)."""
    return _Guard(None, what, seconds, None)


# Names that moved to benchtool.errors (beside the other errors); importing one from here
# still works, with a DeprecationWarning.
__getattr__ = moved_names(__name__, dict.fromkeys(
    ("PluginRaised", "describe_error", "is_out_of_memory", "format_bytes"), "benchtool.errors"))
