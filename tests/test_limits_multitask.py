"""The multi-task digits problem: targets, Delta_m, and training with each weighting."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from benchtool.contracts.data import DataBundle, DatasetInfo, Split
from benchtool.errors import UsageError
from benchtool.harness.limits.multitask import (
    CENTRE_NOISE, TASKS, MultiTaskRecipe, MultiTaskSplit, centre_of_mass, delta_m, multitask_problem, multitask_recipe,
    task_losses, train_multitask, train_multitask_together,
)
from benchtool_limits.weightings import EqualWeighting, FixedWeighting, GradNormWeighting, UncertaintyWeighting

INFO = DatasetInfo(name="tiny-digits", task="classification", input_shape=(1, 8, 8), num_classes=3, bounds=(0.0, 1.0))


def tiny_bundle(n: int = 48) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    splits = [Split(torch.rand(n, 1, 8, 8, generator=g), torch.arange(n) % 3) for _ in range(3)]
    return DataBundle(INFO, *splits)


def test_tasks_and_recipes_are_as_documented() -> None:
    assert [(t.name, t.kind) for t in TASKS] == [
        ("digit", "classification"), ("centre", "regression"), ("reconstruction", "regression")]
    assert [multitask_recipe(b).epochs for b in ("small", "default", "full")] == [10, 60, 150]
    assert multitask_recipe("default") == MultiTaskRecipe(epochs=60, batch_size=64, lr=1e-3)
    assert CENTRE_NOISE == 0.5


def test_centre_of_mass_on_hand_made_images() -> None:
    images = torch.zeros(3, 1, 8, 8)
    images[0, 0, 2, 5] = 1.0  # one pixel
    images[1, 0, 1, 1] = images[1, 0, 5, 7] = 0.5  # two equal pixels: the midpoint
    # images[2] is blank: the image centre
    assert centre_of_mass(images).tolist() == [[2.0, 5.0], [3.0, 4.0], [3.5, 3.5]]


def test_noise_only_on_training_centres_and_seeded() -> None:
    bundle = tiny_bundle()
    problem = multitask_problem(bundle, seed=0)
    for name in ("val", "test"):
        assert torch.allclose(getattr(problem, name).centre, centre_of_mass(getattr(bundle, name).x))
    noise = problem.train.centre - centre_of_mass(bundle.train.x)
    assert 0.3 < float(noise.std()) < 0.7  # 0.5 px on 96 values
    assert torch.equal(multitask_problem(bundle, seed=0).train.centre, problem.train.centre)
    assert not torch.equal(multitask_problem(bundle, seed=1).train.centre, problem.train.centre)
    assert problem.train.image.shape == (48, 64) and torch.equal(problem.train.digit, bundle.train.y)
    assert problem.num_classes == 3


def test_the_problem_needs_image_classification() -> None:
    bundle = dataclasses.replace(tiny_bundle(), info=dataclasses.replace(INFO, task="regression", num_classes=None))
    with pytest.raises(UsageError, match="image classification"):
        multitask_problem(bundle, seed=0)


def test_delta_m_on_hand_computed_values() -> None:
    baseline = {"digit": 0.9, "centre": 0.5, "reconstruction": 0.2}
    # digit +10% relative, centre error halved (+50%), reconstruction unchanged: mean 20%
    assert delta_m({"digit": 0.99, "centre": 0.25, "reconstruction": 0.2}, baseline) == pytest.approx(20.0)
    assert delta_m(baseline, baseline) == 0.0
    assert delta_m({"digit": 0.9, "centre": 0.5, "reconstruction": 0.3}, baseline) == pytest.approx(-50.0 / 3)


def test_task_losses_are_in_task_order() -> None:
    batch = MultiTaskSplit(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), torch.ones(2, 2), torch.zeros(2, 64))
    outputs = {"digit": torch.zeros(2, 3), "centre": torch.full((2, 2), 3.0),
               "reconstruction": torch.full((2, 64), 0.5)}
    assert task_losses(outputs, batch).tolist() == pytest.approx([math.log(3), 4.0, 0.25])


@pytest.mark.parametrize("scheme", [EqualWeighting(), FixedWeighting(weights=(1.0, 10.0, 100.0)),
                                    UncertaintyWeighting(), GradNormWeighting()], ids=lambda s: s.name)
def test_training_records_state_per_epoch_and_is_seeded(scheme) -> None:
    problem = multitask_problem(tiny_bundle(), seed=0)
    recipe = MultiTaskRecipe(epochs=2, batch_size=16)
    run = train_multitask(scheme, problem, recipe, seed=0, device="cpu")
    assert len(run.states) == 2 and set(run.test) == {t.name for t in TASKS} == set(run.val)
    assert {f"weight/{t.name}" for t in TASKS} <= set(run.states[-1])
    assert 0.0 <= run.test["digit"] <= 1.0 and run.test["centre"] > 0 and run.test["reconstruction"] > 0
    again = train_multitask(type(scheme)(**scheme.params), problem, recipe, seed=0, device="cpu")
    assert again.test == run.test and again.states == run.states


def _close(a: dict[str, float], b: dict[str, float]) -> bool:
    return all(math.isclose(a[k], b[k], rel_tol=1e-5, abs_tol=1e-6) for k in a) and a.keys() == b.keys()


@pytest.mark.parametrize("make", [lambda w: FixedWeighting(weights=w), lambda w: UncertaintyWeighting()],
                         ids=["fixed", "uncertainty"])
def test_networks_trained_together_are_those_trained_alone(make) -> None:
    """Batched over settings and seeds: each network's metrics and weighting states are its lone
    run's, to float32 rounding (one batched matmul per layer instead of one per network)."""
    problem = multitask_problem(tiny_bundle(), seed=0)
    recipe = MultiTaskRecipe(epochs=3, batch_size=16)
    pairs = [(w, seed) for w in ((1.0, 1.0, 1.0), (1.0, 10.0, 0.1)) for seed in (0, 1)]
    alone = [train_multitask(make(w), problem, recipe, seed=seed, device="cpu") for w, seed in pairs]
    together = train_multitask_together([make(w) for w, _ in pairs], problem, recipe,
                                        seeds=[seed for _, seed in pairs], device="cpu")
    assert [r.params for r in together] == [r.params for r in alone]
    for lone, batched in zip(alone, together):
        assert _close(lone.test, batched.test) and _close(lone.val, batched.val)
        assert all(_close(a, b) for a, b in zip(lone.states, batched.states)) and len(lone.states) == 3
    assert alone[0].test != alone[1].test  # two seeds: two networks, each kept apart in the batch


def test_a_scheme_that_differentiates_the_shared_layer_trains_one_network_at_a_time() -> None:
    assert GradNormWeighting.differentiates_shared and not FixedWeighting.differentiates_shared
    problem = multitask_problem(tiny_bundle(), seed=0)
    recipe = MultiTaskRecipe(epochs=2, batch_size=16)
    alone = [train_multitask(GradNormWeighting(), problem, recipe, seed=seed, device="cpu") for seed in (0, 1)]
    together = train_multitask_together([GradNormWeighting(), GradNormWeighting()], problem, recipe, seeds=[0, 1],
                                        device="cpu")
    assert [r.test for r in together] == [r.test for r in alone]  # bit for bit: the lone runs themselves
    assert [r.states for r in together] == [r.states for r in alone]


def test_training_together_needs_one_seed_per_weighting() -> None:
    problem = multitask_problem(tiny_bundle(), seed=0)
    with pytest.raises(UsageError, match=r"got 2 loss weighting\(s\) and 1 seed\(s\); expected one seed per"):
        train_multitask_together([EqualWeighting(), EqualWeighting()], problem, MultiTaskRecipe(epochs=1), seeds=[0],
                                 device="cpu")
    with pytest.raises(UsageError, match="got 0 loss weighting"):
        train_multitask_together([], problem, MultiTaskRecipe(epochs=1), seeds=[], device="cpu")
