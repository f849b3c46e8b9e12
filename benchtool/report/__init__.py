"""The HTML report of a run: leaderboards and matplotlib figures in one self-contained file."""

from __future__ import annotations

from benchtool.report.html import render_report

__all__ = ["render_report"]
