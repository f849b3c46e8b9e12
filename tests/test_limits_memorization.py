"""Label corruption (exact, seeded, nested, uniform), random pixels, and the train-until-
memorized loop of the generalization suite."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from benchtool.contracts.data import Split
from benchtool.contracts.model import TrainRecipe
from benchtool.errors import UsageError
from benchtool.harness.limits.memorization import (
    CORRUPTION_FRACTIONS, MemorizationRecipe, corrupt_labels, disable_dropout, fit_labels, gaussian_images,
    memorization_recipe, resampled_count, subsample,
)


def test_grid_and_recipes_are_as_documented() -> None:
    assert CORRUPTION_FRACTIONS == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    small, default, full = (memorization_recipe(b) for b in ("small", "default", "full"))
    assert (small.recipe.epochs, small.recipe.batch_size, small.train_examples) == (150, 32, 256)
    assert (default.recipe.epochs, default.recipe.batch_size, default.train_examples) == (200, 64, None)
    assert (full.recipe.epochs, full.train_examples) == (400, None)
    for setup in (small, default, full):
        r = setup.recipe
        assert (r.optimizer, r.lr, r.schedule, r.weight_decay, r.augment, setup.keep_dropout) == (
            "adam", 3e-3, "cosine", 0.0, "none", False)
    with pytest.raises(UsageError, match="budget"):
        memorization_recipe("tiny")


@given(n=st.integers(0, 500), fraction=st.floats(0.0, 1.0), classes=st.integers(2, 12), seed=st.integers(0, 2**16))
def test_exactly_round_p_n_labels_are_redrawn_and_the_rest_kept(n, fraction, classes, seed) -> None:
    labels = torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))
    out = corrupt_labels(labels, fraction, classes, seed)
    assert int(out.resampled.sum()) == resampled_count(n, fraction) == math.floor(fraction * n + 0.5)
    assert torch.equal(out.labels[~out.resampled], labels[~out.resampled])
    assert out.labels.dtype == torch.int64 and bool(((out.labels >= 0) & (out.labels < classes)).all())
    again = corrupt_labels(labels, fraction, classes, seed)
    assert torch.equal(again.labels, out.labels) and torch.equal(again.resampled, out.resampled)


def test_round_half_up_and_the_ends() -> None:
    labels = torch.zeros(5, dtype=torch.int64)
    assert resampled_count(5, 0.5) == 3 and resampled_count(5, 0.3) == 2  # 2.5 -> 3, 1.5 -> 2
    assert not corrupt_labels(labels, 0.0, 10, 0).resampled.any()
    assert corrupt_labels(labels, 1.0, 10, 0).resampled.all()
    assert corrupt_labels(torch.arange(10), 0.4, 10, 0).fraction_resampled == 0.4


@given(seed=st.integers(0, 2**16), low=st.sampled_from([0.0, 0.2, 0.4]), high=st.sampled_from([0.6, 0.8, 1.0]))
def test_corruption_is_nested_across_fractions(seed, low, high) -> None:
    labels = torch.arange(200) % 10
    small, large = corrupt_labels(labels, low, 10, seed), corrupt_labels(labels, high, 10, seed)
    assert bool((large.resampled | ~small.resampled).all())  # small's redrawn set is inside large's
    assert torch.equal(large.labels[small.resampled], small.labels[small.resampled])


def test_seed_changes_the_choice() -> None:
    labels = torch.arange(1000) % 10
    a, b = corrupt_labels(labels, 0.5, 10, 0), corrupt_labels(labels, 0.5, 10, 1)
    assert not torch.equal(a.resampled, b.resampled)


def test_redrawn_labels_are_uniform_over_all_classes() -> None:
    """Uniform over all C classes, the true one included (Zhang et al.): about 1/C stay right."""
    labels = torch.zeros(50_000, dtype=torch.int64)
    out = corrupt_labels(labels, 1.0, 10, seed=3)
    counts = torch.bincount(out.labels, minlength=10).double()
    chi_square = float(((counts - 5000) ** 2 / 5000).sum())
    assert chi_square < 27.9  # the 0.1% critical value of chi-square with 9 degrees of freedom
    assert abs(float((out.labels == labels).double().mean()) - 0.1) < 0.01


@pytest.mark.parametrize("fraction, classes", [(-0.1, 10), (1.5, 10), (0.5, 1)])
def test_bad_corruption_arguments_are_usage_errors(fraction, classes) -> None:
    with pytest.raises(UsageError):
        corrupt_labels(torch.zeros(4, dtype=torch.int64), fraction, classes, 0)


def test_gaussian_images_match_per_pixel_mean_and_std() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4000, 1, 2, 2, generator=g) * torch.tensor([1.0, 2.0, 0.5, 0.0]).reshape(1, 1, 2, 2)
    noise = gaussian_images(x, seed=0)
    assert noise.shape == x.shape and noise.dtype == x.dtype
    flat_x, flat_n = x.reshape(len(x), -1), noise.reshape(len(x), -1)
    assert torch.allclose(flat_n.mean(0), flat_x.mean(0), atol=0.03)
    assert torch.allclose(flat_n.std(0), flat_x.std(0), atol=0.03)
    assert torch.equal(gaussian_images(x, seed=0), noise) and not torch.equal(gaussian_images(x, seed=1), noise)


def test_subsample_is_seeded_and_sized() -> None:
    split = Split(torch.arange(100.0)[:, None], torch.arange(100))
    part = subsample(split, 10, seed=4)
    assert len(part) == 10 and torch.equal(part.x[:, 0].long(), part.y)
    assert torch.equal(subsample(split, 10, seed=4).y, part.y)
    assert subsample(split, None, 0) is split and subsample(split, 1000, 0) is split


def _tiny_mlp(dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 3))


def test_fit_labels_memorizes_random_labels_and_stops_there() -> None:
    g = torch.Generator().manual_seed(0)
    train = Split(torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g))
    test = Split(torch.randn(10, 6, generator=g), torch.randint(0, 3, (10,), generator=g))
    setup = MemorizationRecipe(TrainRecipe(epochs=300, batch_size=20, lr=1e-2, schedule="cosine"))
    model = _tiny_mlp(dropout=0.5)
    history = fit_labels(model, train, test, setup, seed=0, device="cpu")
    assert history.epochs_to_fit is not None and history.epochs == history.epochs_to_fit < 300
    assert history.train_accuracy[-1] == 1.0 and history.steps_per_epoch == 2
    assert len(history.test_accuracy) == len(history.train_loss) == history.epochs
    assert not model.training and model[3].p == 0.0  # dropout switched off for the run
    replay = fit_labels(_tiny_mlp(dropout=0.5), train, test, setup, seed=0, device="cpu")
    assert replay.train_accuracy == history.train_accuracy  # seeded


def test_fit_labels_reports_an_unfinished_fit_and_rejects_augmentation() -> None:
    g = torch.Generator().manual_seed(1)
    train = Split(torch.randn(64, 6, generator=g), torch.randint(0, 3, (64,), generator=g))
    history = fit_labels(_tiny_mlp(), train, train, MemorizationRecipe(TrainRecipe(epochs=1, batch_size=64)),
                         seed=0, device="cpu")
    assert history.epochs == 1 and history.epochs_to_fit is None and history.best_train_accuracy < 1.0
    with pytest.raises(UsageError, match="augmentation"):
        fit_labels(_tiny_mlp(), train, train, MemorizationRecipe(TrainRecipe(epochs=1, augment="crop")),
                   seed=0, device="cpu")


def test_disable_dropout_counts_and_zeroes_every_dropout_layer() -> None:
    model = nn.Sequential(nn.Dropout(0.3), nn.Dropout2d(0.2), nn.Linear(2, 2), nn.AlphaDropout(0.1))
    assert disable_dropout(model) == 3
    assert all(getattr(m, "p", 0.0) == 0.0 for m in model)
