"""The suites' fixtures: the run config and host, a fresh plugin per kind fixture, the
selected dataset's bundle and the selected model trained on it."""

from __future__ import annotations

from typing import Any

import pytest

from benchtool.config import RunConfig
from benchtool.errors import UsageError
from benchtool.pytest.records import PLUGIN_FIXTURES
from benchtool.pytest.session import BenchSession, bench_session
from benchtool.registry import KindSpec


@pytest.fixture(scope="session")
def bt_config(request: pytest.FixtureRequest) -> RunConfig:
    """The run's configuration (device, budget, seed, filters, ...)."""
    return bench_session(request.config).config


@pytest.fixture(scope="session")
def bt_host(request: pytest.FixtureRequest) -> Any:
    """The loaded plugin host (registry, hooks)."""
    return bench_session(request.config).host


def _plugin_fixture(spec: KindSpec) -> Any:
    def fixture(request: pytest.FixtureRequest) -> Any:
        name = getattr(request, "param", None)
        if name is None:
            pytest.fail(f"fixture {spec.fixture!r} is only available to parametrized suite tests")
        return bench_session(request.config).host.registry.create(spec.kind, name)

    fixture.__doc__ = f"A fresh instance of each selected {spec.fixture.replace('_', ' ')}."
    return pytest.fixture(name=spec.fixture)(fixture)


for _spec in PLUGIN_FIXTURES.values():
    globals()[f"_fixture_{_spec.fixture}"] = _plugin_fixture(_spec)


def load_bundle(bench: BenchSession, name: str) -> Any:
    """The DataBundle for ``name`` at the run's seed, from the loader's one bundle cache
    (:func:`benchtool.data.loading.load_dataset`). A dataset that cannot be loaded (missing
    files) is tried once: every later cell gets the same one-line error."""
    from benchtool.data import load_dataset

    cfg = bench.config
    key = (name, cfg.seed)
    if key in bench.load_errors:
        raise UsageError(bench.load_errors[key])
    dataset = bench.host.registry.create("datasets", name)
    try:
        return load_dataset(dataset, root=cfg.data_root, seed=cfg.seed, download=cfg.download)
    except UsageError as exc:
        bench.load_errors[key] = str(exc)
        raise UsageError(str(exc)) from None


def trained(bench: BenchSession, model_name: str, dataset_name: str, seed: int | None = None) -> Any:
    """A trained ``model_name`` for ``dataset_name``: once per run, once per machine with the cache."""
    from benchtool.models import trained_model

    cfg = bench.config
    seed = cfg.seed if seed is None else seed
    key = (model_name, dataset_name, seed)
    if key not in bench.models:
        spec = bench.host.registry.create("models", model_name)
        bench.models[key] = trained_model(
            spec, load_bundle(bench, dataset_name), seed=seed, budget=cfg.budget, device=cfg.device,
            cache_dir=None, checkpoint=cfg.checkpoint if seed == cfg.seed else None,
        )
    return bench.models[key]


@pytest.fixture(scope="session")
def bt_data(request: pytest.FixtureRequest) -> Any:
    """``bt_data(name)``: any registered dataset's bundle at the run's seed (loaded once)."""
    bench = bench_session(request.config)
    return lambda name: load_bundle(bench, name)


@pytest.fixture(scope="session")
def bt_models(request: pytest.FixtureRequest) -> Any:
    """``bt_models(model, dataset, seed=None)``: a trained zoo model (trained once per run)."""
    bench = bench_session(request.config)
    return lambda model_name, dataset_name, seed=None: trained(bench, model_name, dataset_name, seed)


@pytest.fixture
def dataset(request: pytest.FixtureRequest) -> Any:
    """The selected dataset's :class:`~benchtool.contracts.DataBundle`."""
    bench = bench_session(request.config)
    try:
        return load_bundle(bench, request.param)
    except UsageError as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)  # outside the except: no "During handling of ..." chain


@pytest.fixture
def model(request: pytest.FixtureRequest, dataset: Any) -> Any:
    """The selected model, trained on the selected dataset, in eval mode on the run's device."""
    try:
        return trained(bench_session(request.config), request.param, dataset.info.name)
    except UsageError as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)
