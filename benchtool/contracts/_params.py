"""Hyper-parameters of a plugin: declared defaults, overridable by keyword, typos refused
both ways: an unknown keyword when built, an undeclared name when read."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from benchtool.errors import UndeclaredHyperParameter

_Plugin = TypeVar("_Plugin", bound="BudgetedHyperParams")


class HyperParams(dict[str, Any]):
    """A plugin's hyper-parameters: a plain dict, except that reading one the plugin does
    not declare is a :class:`~benchtool.errors.UndeclaredHyperParameter` naming the plugin
    and what it declares, not a bare ``KeyError: 'steps'``. ``get`` and ``in`` are unchanged."""

    def __init__(self, values: dict[str, Any], *, plugin: str = "?") -> None:
        super().__init__(values)
        self.plugin = plugin

    def __missing__(self, key: object) -> Any:
        raise UndeclaredHyperParameter(self.plugin, key, sorted(map(str, self)))

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (xdist, Ray) as itself, attributes included
        return (type(self), (dict(self),), {"plugin": self.plugin})


def merge_hyperparams(kind: str, name: str, defaults: dict[str, Any], given: dict[str, Any]) -> HyperParams:
    """``defaults`` updated with ``given``; an unknown keyword is a TypeError naming it."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise TypeError(f"{kind} {name!r}: unknown hyper-parameter(s) {unknown}; expected some of {sorted(defaults)}")
    return HyperParams({**defaults, **given}, plugin=name)


class BudgetedHyperParams:
    """The hyper-parameters of a plugin kind whose cost a run budget scales (attacks, loss
    weightings): ``defaults`` are the ``full`` budget (the paper's values), overridable by
    keyword; ``budget_overrides`` names the documented cheaper settings of ``small`` and
    ``default``, which :meth:`at_budget` applies under the explicitly given keywords."""

    name: ClassVar[str]
    kind_label: ClassVar[str]  # how errors name the kind: "attack", "loss weighting"
    defaults: ClassVar[dict[str, Any]] = {}
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, **hyperparams: Any) -> None:
        self.explicit: dict[str, Any] = dict(hyperparams)
        self.params: dict[str, Any] = merge_hyperparams(self.kind_label, self.name, self.defaults, hyperparams)

    def at_budget(self: _Plugin, budget: str) -> _Plugin:
        """A fresh plugin with this run budget's ``budget_overrides`` under the explicitly set
        hyper-parameters."""
        return type(self)(**{**self.budget_overrides.get(budget, {}), **self.explicit})
