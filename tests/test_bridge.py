"""The bridge's entry-point module: it registers every feature module, and the names it
used to define still import from it, with a DeprecationWarning naming their new home."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import warnings

import pytest

import benchtool.pytest_plugin as entry_point
from benchtool.pytest import FEATURES


def test_the_entry_point_registers_every_feature_module() -> None:
    assert set(FEATURES) <= set(entry_point.pytest_plugins)
    for module in FEATURES:
        importlib.import_module(module)


def test_a_feature_comes_after_the_features_it_imports() -> None:
    """pytest rewrites a plugin module's asserts only if it imports it first (else it warns)."""
    for position, module in enumerate(FEATURES):
        source = importlib.util.find_spec(module).origin  # type: ignore[union-attr]
        tree = ast.parse(open(source).read())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        later = imported & set(FEATURES[position + 1:])
        assert not later, f"{module} imports {sorted(later)}, registered after it"


@pytest.mark.parametrize("name", sorted(entry_point.MOVED))
def test_a_moved_name_still_imports_with_a_deprecation_warning(name: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"import it from {entry_point.MOVED[name]}"):
        value = getattr(entry_point, name)
    assert value is getattr(importlib.import_module(entry_point.MOVED[name]), name)


def test_the_run_state_names_import_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from benchtool.pytest_plugin import is_worker, session_key  # noqa: F401
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        entry_point.nothing  # noqa: B018


def test_bundles_have_one_cache_the_loaders() -> None:
    """The bridge keeps no bundles of its own: clearing the loader's cache reloads them."""
    from benchtool.config import RunConfig
    from benchtool.data.loading import clear_cache
    from benchtool.host import load_host
    from benchtool.pytest.fixtures import load_bundle
    from benchtool.pytest.session import BenchSession

    bench = BenchSession(RunConfig(seed=3), load_host())
    first = load_bundle(bench, "digits")
    assert load_bundle(bench, "digits") is first
    clear_cache()
    assert load_bundle(bench, "digits") is not first
