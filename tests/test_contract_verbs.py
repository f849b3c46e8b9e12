"""The naming rule for plugin verbs and harness verbs, over every contract base in
``benchtool/contracts/``: a plugin implements (or overrides) its base's plugin verbs; the
harness calls the base's ``@final`` methods, which guard the plugin's verbs. A name is one or
the other across every contract, never both, so ``setup`` or ``sample`` means one thing."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings
from abc import ABC

import pytest

import benchtool.contracts
from benchtool.contracts._renamed import Renamed


def contract_bases() -> list[type]:
    found = []
    for info in pkgutil.iter_modules(benchtool.contracts.__path__):
        module = importlib.import_module(f"benchtool.contracts.{info.name}")
        found += [cls for cls in vars(module).values() if inspect.isclass(cls) and cls.__module__ == module.__name__
                  and issubclass(cls, ABC) and cls is not ABC and inspect.isabstract(cls)]
    return sorted(found, key=lambda cls: cls.__qualname__)


def methods(cls: type) -> dict[str, object]:
    """The base's own public methods (deprecated old names aside)."""
    return {name: value for name, value in vars(cls).items()
            if not isinstance(value, Renamed) and inspect.isfunction(value)
            and (not name.startswith("_") or name == "__call__")}


def harness_verbs(cls: type) -> set[str]:
    return {name for name, fn in methods(cls).items() if getattr(fn, "__final__", False)}


def plugin_verbs(cls: type) -> set[str]:
    return set(methods(cls)) - harness_verbs(cls)


BASES = contract_bases()


def test_every_contract_base_is_found() -> None:
    assert {cls.__name__ for cls in BASES} >= {
        "Attack", "UncertaintyEstimator", "SearchSpace", "SearchStrategy", "LossWeighting", "TargetFunction",
        "Dataset", "ModelSpec"}


@pytest.mark.parametrize("base", BASES, ids=lambda cls: cls.__name__)
def test_an_abstract_method_is_a_plugin_verb_never_final(base: type) -> None:
    assert not sorted(base.__abstractmethods__ & harness_verbs(base))


def test_no_name_is_a_plugin_verb_in_one_contract_and_a_harness_verb_in_another() -> None:
    plugin = {name: cls.__name__ for cls in BASES for name in plugin_verbs(cls)}
    clashes = sorted(f"{name}: plugin verb of {plugin[name]}, harness verb of {cls.__name__}"
                     for cls in BASES for name in harness_verbs(cls) if name in plugin)
    assert clashes == []


def test_the_rule_sees_a_clash() -> None:
    from typing import final

    class Clashing(ABC):
        @final
        def perturb(self) -> None:
            """A harness method named like the attack's plugin verb."""

    assert harness_verbs(Clashing) & plugin_verbs(benchtool.contracts.attack.Attack) == {"perturb"}


@pytest.mark.parametrize(("owner", "old", "new"), [
    ("benchtool.contracts.nas:SearchSpace", "sample", "draw"),
    ("benchtool.contracts.nas:SearchSpace", "sample_unseen", "draw_unseen"),
    ("benchtool.contracts.limits:LossWeighting", "setup", "start"),
])
def test_a_renamed_harness_verb_still_works_with_a_deprecation_warning(owner: str, old: str, new: str) -> None:
    module, _, name = owner.partition(":")
    cls = getattr(importlib.import_module(module), name)
    with pytest.warns(DeprecationWarning, match=rf"{name}\.{old} is renamed {name}\.{new}"):
        assert getattr(cls, old) is getattr(cls, new)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        getattr(cls, new)
