"""Deadlines for code the harness calls but does not trust to return (a child network's
training): :func:`time_limit` is :func:`benchtool.contracts._guard.deadline`, the same
mechanism that bounds every plugin call (a strategy's ``propose`` included), so a search
always ends (NNI #4891: experiments that never stop)."""

from __future__ import annotations

from benchtool.contracts._guard import POLL_SECONDS, DeadlineExceeded, TimedOut
from benchtool.contracts._guard import deadline as time_limit

__all__ = ["POLL_SECONDS", "DeadlineExceeded", "TimedOut", "time_limit"]
