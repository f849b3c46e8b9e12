"""Moved packages (issue #16): the NAS and limits harness live in ``benchtool.harness``; their old
paths ``benchtool.nas(.*)`` and ``benchtool.limits(.*)`` still import, with a DeprecationWarning
naming the new module, and give the very objects of the new one."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import warnings

import pytest

import benchtool.harness.limits
import benchtool.harness.nas

MOVED = {"benchtool.nas": benchtool.harness.nas, "benchtool.limits": benchtool.harness.limits}
SUBMODULES = [(old, info.name) for old, new in MOVED.items() for info in pkgutil.iter_modules(new.__path__)]


@pytest.fixture
def fresh_old_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the old paths already imported, so this test imports them (and warns) again."""
    for name in list(sys.modules):
        if name.startswith(tuple(f"{old}." for old in MOVED)):
            monkeypatch.delitem(sys.modules, name)
    for old, new in MOVED.items():
        package = importlib.import_module(old)
        for name in [name for name in vars(package) if name in vars(new) and not name.startswith("_")]:
            monkeypatch.delattr(package, name)


@pytest.mark.usefixtures("fresh_old_paths")
@pytest.mark.parametrize(("old", "sub"), SUBMODULES, ids=[f"{o}.{s}" for o, s in SUBMODULES])
def test_an_old_module_path_imports_the_new_module_with_a_warning(old: str, sub: str) -> None:
    new = f"{MOVED[old].__name__}.{sub}"
    with pytest.warns(DeprecationWarning, match=rf"module {old}\.{sub} moved to {new}: import {new}"):
        module = importlib.import_module(f"{old}.{sub}")
    assert module is importlib.import_module(new)
    assert module.__name__ == module.__spec__.name == new  # the new module's identity is untouched


@pytest.mark.usefixtures("fresh_old_paths")
@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_package_gives_the_new_packages_names_with_a_warning(old: str) -> None:
    new = MOVED[old]
    submodules = [sub for o, sub in SUBMODULES if o == old]
    for sub in submodules:
        importlib.import_module(f"{new.__name__}.{sub}")
    names = [*getattr(new, "__all__", ()), *submodules]
    package = importlib.import_module(old)
    for name in names:
        with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} moved to {new.__name__}\.{name}"):
            assert getattr(package, name) is getattr(new, name)


@pytest.mark.usefixtures("fresh_old_paths")
def test_the_usual_import_forms_work() -> None:
    with pytest.warns(DeprecationWarning, match="benchtool.harness.nas"):
        from benchtool.nas import run_search
    with pytest.warns(DeprecationWarning, match="benchtool.harness.limits"):
        from benchtool.limits.memorization import memorization_recipe
    assert run_search is benchtool.harness.nas.run_search
    assert memorization_recipe is importlib.import_module("benchtool.harness.limits.memorization").memorization_recipe


def test_a_name_or_module_that_never_existed_is_still_an_error() -> None:
    import benchtool.nas

    with pytest.raises(AttributeError, match="module 'benchtool.nas' has no attribute 'no_such_name'"):
        benchtool.nas.no_such_name  # noqa: B018
    with pytest.raises(ModuleNotFoundError, match="benchtool.limits.no_such_module"):
        importlib.import_module("benchtool.limits.no_such_module")


def test_the_new_paths_import_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for new in MOVED.values():
            for info in pkgutil.iter_modules(new.__path__):
                importlib.import_module(f"{new.__name__}.{info.name}")
