"""The HTML report of a run: leaderboards and matplotlib figures in one self-contained file.

``render_report`` is imported on first use, so the CLI can load the ``report`` plugin
(:mod:`benchtool.report.commands`) without matplotlib.
"""

from __future__ import annotations

from typing import Any

__all__ = ["render_report"]


def __getattr__(name: str) -> Any:
    if name == "render_report":
        from benchtool.report.html import render_report

        return render_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
