"""Conformance checks for uncertainty estimators, run on tiny generated tasks built here.

For every task the estimator declares (classification: three Gaussian blobs in 4-D;
regression: a noisy sine), the estimator is fit through the harness's ``fit_checked`` on
a small seeded network with BatchNorm and dropout, then its samples are checked: shape
``(T, N, C)`` (or ``(T, N, D)`` mean/variance pairs), valid probabilities, no test data
seen by ``fit`` and nothing learnt from what ``sample`` sees, same seed => same samples,
and the caller's model left exactly as given; an estimator with its own OOD score
(``score_name``) has that score checked the same way.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from torch import nn

from benchtool.contracts._state import ModelSnapshot
from benchtool.contracts.data import Dataset, DatasetInfo, Split, Task
from benchtool.contracts.model import TrainRecipe
from benchtool.contracts.uncertainty import PROB_SUM_TOLERANCE, EstimationTask, UncertaintyEstimator, seeded
from benchtool.models.nets import output_size
from benchtool.testing import Check, fresh

TASKS: tuple[Task, ...] = ("classification", "regression")
NUM_CLASSES = 3
FEATURES = 4
HIDDEN = 16
NUM_SAMPLES = 4  # T in the conformance tasks
SPLIT_SIZES = {"train": 96, "val": 48, "test": 24}
RECIPE = TrainRecipe(epochs=4, batch_size=32, optimizer="adam", lr=1e-2)  # for estimators that train
MAX_EXAMPLES = 5


def tiny_network(info: DatasetInfo, outputs: int | None = None) -> nn.Module:
    """Linear-BatchNorm-ReLU-Dropout-Linear: BatchNorm statistics and a dropout layer make
    any change to the model's mode or buffers visible; ``outputs`` overrides the width."""
    width = outputs or output_size(info)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(info.input_shape[0], HIDDEN), nn.BatchNorm1d(HIDDEN), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(HIDDEN, width),
    )


def _info(task: Task) -> DatasetInfo:
    if task == "classification":
        return DatasetInfo("conformance-blobs", "classification", (FEATURES,), NUM_CLASSES, (-6.0, 6.0))
    return DatasetInfo("conformance-sine", "regression", (1,), None, (-3.0, 3.0), output_dim=1)


def _split(task: Task, n: int, generator: torch.Generator) -> Split:
    if task == "classification":
        y = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
        centres = 2.0 * torch.eye(NUM_CLASSES, FEATURES)
        return Split(centres[y] + torch.randn(n, FEATURES, generator=generator), y)
    x = 4.0 * torch.rand(n, 1, generator=generator) - 2.0
    return Split(x, torch.sin(2.0 * x) + 0.1 * torch.randn(n, 1, generator=generator))


@cache
def _splits(task: Task) -> dict[str, Split]:
    generator = torch.Generator().manual_seed(2024)
    return {name: _split(task, size, generator) for name, size in SPLIT_SIZES.items()}


@cache
def _seeded_network(task: Task, seed: int) -> nn.Module:
    """A tiny network with weights and BatchNorm statistics drawn from ``seed``, in eval
    mode: the rules do not depend on training, and drawing it costs nothing."""
    generator = torch.Generator().manual_seed(seed)
    network = tiny_network(_info(task))
    with torch.no_grad():
        for tensor in [*network.parameters(), *network.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(0.5 * torch.randn(tensor.shape, generator=generator))
        batch_norm = network[2]
        batch_norm.running_var.abs_().add_(0.5)
    return network.eval()


def conformance_task(task: Task, seed: int = 0) -> tuple[EstimationTask, Split]:
    """A fresh :class:`EstimationTask` of the tiny ``task`` and its held-back test split."""
    info, splits = _info(task), _splits(task)
    estimation = EstimationTask(
        info=info, train=splits["train"], val=splits["val"], model=copy.deepcopy(_seeded_network(task, seed)),
        model_name="conformance-tiny",
        train_member=lambda member_seed: copy.deepcopy(_seeded_network(task, member_seed)),
        device=torch.device("cpu"), seed=seed, num_samples=NUM_SAMPLES, budget="small",
        build_network=lambda outputs: tiny_network(info, outputs), recipe=RECIPE,
    )
    return estimation, splits["test"]


def _supported(plugin: Any) -> list[Task]:
    return [task for task in TASKS if task in plugin.tasks]


@dataclass
class Fitted:
    """An estimator fit on a conformance task, with the test split it never saw."""

    estimator: UncertaintyEstimator
    task: EstimationTask
    test: Split


def _fit(plugin: Any, task: Task, seed: int = 0) -> Fitted:
    """A fresh estimator fit through the harness; ``fit`` may not load any dataset."""
    estimation, test = conformance_task(task, seed)
    estimator = fresh(plugin)
    with datasets_unloadable():
        estimator.fit_checked(estimation)
    return Fitted(estimator, estimation, test)


_fits: dict[tuple[Any, Task], Fitted] = {}


def _shared_fit(plugin: Any, task: Task) -> Fitted:
    """One fit per (plugin, task) shared by the checks that only read it; per torch thread
    count too, since a fit's float sums (so its samples) depend on it."""
    key = (plugin, task, torch.get_num_threads())
    if key not in _fits:
        if len(_fits) > 64:
            _fits.clear()
        _fits[key] = _fit(plugin, task)
    return _fits[key]


def raw_samples(estimator: UncertaintyEstimator, x: torch.Tensor, seed: int) -> list[Any]:
    """Every chunk ``sample`` yields for ``x``, under the same seeding as ``predict``."""
    with seeded(seed, torch.device("cpu")), torch.no_grad():
        out = estimator.sample(x)
        return [out] if isinstance(out, (torch.Tensor, tuple)) else list(out)


def _batches(test: Split) -> st.SearchStrategy[tuple[torch.Tensor, int]]:
    """A slice of the test inputs (1 example up to all) and a sampling seed."""
    return st.tuples(st.integers(1, len(test)), st.integers(0, 2**16)).map(lambda a: (test.x[: a[0]], a[1]))


def _for_batches(fitted: Fitted, rule: Any) -> None:
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=(Phase.explicit, Phase.generate), suppress_health_check=[HealthCheck.too_slow])
    @given(batch=_batches(fitted.test))
    def holds(batch: tuple[torch.Tensor, int]) -> None:
        rule(fitted, *batch)

    holds()


def _tensors(chunk: Any, task: EstimationTask) -> tuple[torch.Tensor, ...]:
    if task.info.task == "classification":
        assert isinstance(chunk, torch.Tensor), f"a chunk is {type(chunk).__name__}, expected a probability tensor"
        return (chunk,)
    assert isinstance(chunk, tuple) and len(chunk) == 2, "a regression chunk must be a (mean, variance) pair"
    return chunk


def check_declares_tasks(plugin: Any) -> None:
    """A name, a docstring citing the method, tasks from the known ones, dict defaults."""
    cls = plugin if inspect.isclass(plugin) else type(plugin)
    assert isinstance(getattr(cls, "name", None), str) and cls.name, "estimator must declare a non-empty `name`"
    assert cls.tasks and set(cls.tasks) <= set(TASKS), f"estimator {cls.name!r}: tasks {set(cls.tasks)} not in {TASKS}"
    assert isinstance(cls.defaults, dict), f"estimator {cls.name!r}: defaults must be a dict"
    assert (inspect.getdoc(cls) or "").strip(), f"estimator {cls.name!r}: needs a docstring citing its method"


def check_sample_shape(plugin: Any) -> None:
    """Every chunk is ``(t, N, C)`` (or a pair of ``(t, N, D)``), at least one pass in all."""

    def rule(fitted: Fitted, x: torch.Tensor, seed: int) -> None:
        task, width = fitted.task, output_size(fitted.task.info)
        chunks = raw_samples(fitted.estimator, x, seed)
        passes = 0
        for chunk in chunks:
            for tensor in _tensors(chunk, task):
                assert tensor.ndim == 3 and tuple(tensor.shape[1:]) == (len(x), width), (
                    f"chunk of shape {tuple(tensor.shape)}, expected (t, {len(x)}, {width})"
                )
            passes += _tensors(chunk, task)[0].shape[0]
        assert passes >= 1, "sample yielded no passes"

    for task in _supported(plugin):
        _for_batches(_shared_fit(plugin, task), rule)


def check_probabilities_valid(plugin: Any) -> None:
    """Probabilities in [0, 1] summing to 1 (within 1e-4); regression variances finite and >= 0."""

    def rule(fitted: Fitted, x: torch.Tensor, seed: int) -> None:
        for chunk in raw_samples(fitted.estimator, x, seed):
            tensors = _tensors(chunk, fitted.task)
            assert all(bool(torch.isfinite(t).all()) for t in tensors), "samples contain NaN or inf"
            if fitted.task.info.task == "classification":
                probs = tensors[0]
                assert float(probs.min()) >= 0 and float(probs.max()) <= 1, "probabilities outside [0, 1]"
                worst = float((probs.sum(-1) - 1).abs().max())
                assert worst <= PROB_SUM_TOLERANCE, f"probability rows sum to 1 +- {worst:.2e}"
            else:
                assert float(tensors[1].min()) >= 0, "negative predicted variance"

    for task in _supported(plugin):
        _for_batches(_shared_fit(plugin, task), rule)


@contextmanager
def datasets_unloadable() -> Iterator[None]:
    """Every known :class:`Dataset`'s ``load`` raises: ``fit`` must use only the task's
    train and validation splits, never load a dataset (and its test split) itself."""

    def refuse(self: Dataset, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"fit loaded dataset {getattr(self, 'name', type(self).__name__)!r} itself")

    patched, pending = [], list(Dataset.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "load" in vars(cls):
            patched.append((cls, vars(cls)["load"]))
            cls.load = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        for cls, original in patched:
            cls.load = original  # type: ignore[method-assign]


def _same(a: list[Any], b: list[Any]) -> bool:
    """Whether two runs of ``sample`` yielded bit-identical chunks."""
    flat_a = [t for chunk in a for t in (chunk if isinstance(chunk, tuple) else (chunk,))]
    flat_b = [t for chunk in b for t in (chunk if isinstance(chunk, tuple) else (chunk,))]
    return len(flat_a) == len(flat_b) and all(
        isinstance(u, torch.Tensor) and isinstance(v, torch.Tensor) and u.shape == v.shape and torch.equal(u, v)
        for u, v in zip(flat_a, flat_b)
    )


def check_fit_without_test_data(plugin: Any) -> None:
    """``fit`` loads no dataset (the test split is withheld from the task), and ``sample``
    learns nothing from the inputs it sees: predicting other data in between does not change
    the predictions for the test inputs."""
    for task in _supported(plugin):
        fitted = _shared_fit(plugin, task)  # fit under datasets_unloadable
        estimator, test = fitted.estimator, fitted.test
        before = raw_samples(estimator, test.x, seed=7)
        raw_samples(estimator, torch.flip(test.x, dims=[0]) * 1.5, seed=8)
        raw_samples(estimator, fitted.task.train.x, seed=9)
        assert _same(before, raw_samples(estimator, test.x, seed=7)), (
            "predictions for the test inputs changed after predicting other inputs: sample must not adapt to "
            "what it sees"
        )


def check_same_seed_same_samples(plugin: Any) -> None:
    """Two fits on the same task give identical samples for the same seed, and one fitted
    estimator repeats itself for a repeated seed."""
    for task in _supported(plugin):
        first, second = _shared_fit(plugin, task), _fit(plugin, task)
        x = first.test.x
        for seed in (0, 11):
            a = raw_samples(first.estimator, x, seed)
            assert _same(a, raw_samples(second.estimator, x, seed)), f"two fits differ for seed {seed}"
            assert _same(a, raw_samples(first.estimator, x, seed)), f"one fit repeated with seed {seed} differs"


def check_model_left_as_given(plugin: Any) -> None:
    """Parameters, buffers (BatchNorm statistics) and train/eval flags of the task's model
    are unchanged after ``fit`` and after drawing every sample."""
    for task in _supported(plugin):
        estimation, test = conformance_task(task)
        snapshot = ModelSnapshot.take(estimation.model)
        estimator = fresh(plugin)
        estimator.fit(estimation)
        snapshot.verify(estimation.model, estimator.name)
        raw_samples(estimator, test.x, seed=5)
        snapshot.verify(estimation.model, estimator.name)


def check_own_score(plugin: Any) -> None:
    """An estimator that overrides ``score`` names it in ``score_name`` (and vice versa);
    its score, through the harness's ``own_score``, is ``(N,)`` and finite for any batch,
    repeats for a repeated seed and for a second fit, and learns nothing from other inputs."""
    cls = plugin if inspect.isclass(plugin) else type(plugin)
    overrides = getattr(cls, "score", None) is not UncertaintyEstimator.score
    name = getattr(cls, "score_name", None)
    assert overrides == (name is not None), (
        f"estimator {cls.name!r}: implements score() but sets no score_name" if overrides
        else f"estimator {cls.name!r}: score_name {name!r} but score() is not implemented"
    )
    if name is None:
        return
    assert isinstance(name, str) and name.strip(), f"estimator {cls.name!r}: score_name must be a non-empty str"

    def rule(fitted: Fitted, x: torch.Tensor, seed: int) -> None:
        score = fitted.estimator.own_score(x, seed=seed)  # the harness checks shape, device, finiteness
        assert score is not None, "own_score returned None for an estimator with a score_name"
        assert torch.equal(score, fitted.estimator.own_score(x, seed=seed)), f"score differs for repeated seed {seed}"

    for task in _supported(plugin):
        fitted = _shared_fit(plugin, task)
        _for_batches(fitted, rule)
        x = fitted.test.x
        before = fitted.estimator.own_score(x, seed=3)
        fitted.estimator.own_score(torch.flip(x, dims=[0]) * 1.5, seed=4)
        assert torch.equal(before, fitted.estimator.own_score(x, seed=3)), (
            "the score for the test inputs changed after scoring other inputs: score must not adapt"
        )
        assert torch.equal(before, _fit(plugin, task).estimator.own_score(x, seed=3)), "two fits score differently"


def checks(plugin: Any) -> list[Check]:
    """Every conformance check for an uncertainty estimator (``own-score`` only for one that
    has, or half-declares, a score of its own)."""
    found = [
        Check("declares-tasks", check_declares_tasks),
        Check("sample-shape", check_sample_shape),
        Check("probabilities-valid", check_probabilities_valid),
        Check("fit-without-test-data", check_fit_without_test_data),
        Check("same-seed-same-samples", check_same_seed_same_samples),
        Check("model-left-as-given", check_model_left_as_given),
    ]
    if _has_own_score(plugin):
        found.append(Check("own-score", check_own_score))
    return found


def _has_own_score(plugin: Any) -> bool:
    cls = plugin if inspect.isclass(plugin) else type(plugin)
    return getattr(cls, "score_name", None) is not None or getattr(cls, "score", None) is not UncertaintyEstimator.score
