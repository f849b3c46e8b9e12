"""Run values checked against the selected cells, before the first one runs: ``--bt-eps``
against each (attack, dataset) cell's data box, ``--bt-checkpoint`` against each model's
network, ``--bt-datasets`` against the suite tests that accept datasets."""

from __future__ import annotations

from typing import Any

import pytest

from benchtool.config import check_eps_range
from benchtool.errors import UsageError
from benchtool.pytest.session import BenchSession, is_worker, session_key
from benchtool.registry import KINDS

FIXTURE_KINDS = {spec.fixture: spec.kind for spec in KINDS.values()}


@pytest.hookimpl(tryfirst=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_check_datasets(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--bt-datasets`` naming only datasets no collected suite test accepts (a regression
    test and classification data, say) is one usage error, before -k and the like deselect."""
    bench = config.stash.get(session_key, None)
    chosen = bench.config.filters.get("datasets") if bench is not None else None
    if not chosen or is_worker(config) or not bench.dataset_tests or any(n for *_, n in bench.dataset_tests):
        return
    registry = bench.host.registry
    given = ", ".join(f"{name} ({registry.get('datasets', name).create().info().task})" for name in chosen)
    tests = ", ".join(nodeid.rsplit("::", 1)[-1] + ("" if task == "any" else f" ({task} only)")
                      for nodeid, task, _ in bench.dataset_tests)
    raise pytest.UsageError(f"--bt-datasets {given}: no selected suite test accepts them; expected datasets of the "
                            f"tasks that {tests} and their plugins and models declare")


@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_check_values(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Once -k, -m and --bt-resume have selected the cells: a value some selected cell cannot use
    (:func:`cell_problem`) ends the run before the first cell, in one line (pytest exit 4,
    ``benchtool run`` exit 2). pytest-xdist workers check while they parametrize instead."""
    bench = config.stash.get(session_key, None)
    if bench is None or is_worker(config):
        return
    cells = [
        {FIXTURE_KINDS[name]: value for name, value in item.callspec.params.items() if name in FIXTURE_KINDS}
        for item in items if hasattr(item, "callspec")
    ]
    problem = cell_problem(bench, cells)
    if problem:
        raise pytest.UsageError(problem)


def cell_problem(bench: BenchSession, cells: list[dict[str, str]]) -> str | None:
    """The first run value one of ``cells`` (kind -> name) cannot use, as one line, or None:
    an ``--bt-eps`` beyond the data box of an (attack, dataset) cell in the attack's norm
    (:func:`~benchtool.config.check_eps_range`), or a ``--bt-checkpoint`` that does not fit
    the network of a (model, dataset) cell."""
    cfg = bench.config
    if not cfg.eps and cfg.checkpoint is None:
        return None
    registry = bench.host.registry
    infos: dict[str, Any] = {}
    checked: set[tuple[str, str, str]] = set()
    try:
        for cell in cells:
            dataset = cell.get("datasets")
            if dataset is None:
                continue
            if dataset not in infos:
                infos[dataset] = registry.get("datasets", dataset).create().info()
            attack, model = cell.get("attacks"), cell.get("models")
            if cfg.eps and attack and ("eps", attack, dataset) not in checked:
                checked.add(("eps", attack, dataset))
                norm = getattr(registry.get("attacks", attack).obj, "norm", None)
                check_eps_range(cfg.eps, norm=str(norm), info=infos[dataset], attack=attack)
            if cfg.checkpoint is not None and model and ("checkpoint", model, dataset) not in checked:
                checked.add(("checkpoint", model, dataset))
                _check_checkpoint_fits(bench, model, infos[dataset])
    except UsageError as exc:
        return str(exc)
    return None


def _check_checkpoint_fits(bench: BenchSession, model_name: str, info: Any) -> None:
    """``--bt-checkpoint`` loads into the network the cell would build (names and shapes)."""
    from benchtool.models.trained import build_seeded, load_user_checkpoint

    spec = bench.host.registry.create("models", model_name)
    if not spec.supports(info):
        return  # not a cell: the bridge only pairs a model with the datasets it supports
    cfg = bench.config
    assert cfg.checkpoint is not None
    load_user_checkpoint(build_seeded(spec, info, cfg.seed), cfg.checkpoint, spec, info)
