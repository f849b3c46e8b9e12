"""Hyper-parameters of a plugin: declared defaults, overridable by keyword, typos refused."""

from __future__ import annotations

from typing import Any


def merge_hyperparams(kind: str, name: str, defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``given``; an unknown keyword is a TypeError naming it."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise TypeError(f"{kind} {name!r}: unknown hyper-parameter(s) {unknown}; expected some of {sorted(defaults)}")
    return {**defaults, **given}
