"""Rethinking generalization (Zhang, Bengio, Hardt, Recht & Vinyals, ICLR 2017): can the
zoo's networks fit a training set whose labels are partly or wholly random?

Per model, for each corruption fraction p in {0, 0.2, ..., 1} (exactly round(p * n)
training labels redrawn uniformly, nested across p) and for Gaussian "random pixels" with
the true labels: final training accuracy (on the labels trained on, eval mode), test
accuracy against the true labels, the epoch and step at which training accuracy first hit
100% (inf when it did not within the budget; then the best accuracy reached tells how
close it came), the seconds it took, and the learning curves
(training and test accuracy per epoch). The claim: training accuracy reaches ~100% at
every p while test accuracy falls to chance (10%). Dropout is off in these runs (they
measure capacity); one more run at p = 1 keeps it (default and full budgets), to see
whether explicit regularization stops the fit. The zoo model trained on the clean labels
with its own recipe is recorded as a reference.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch

from benchtool.claims import NOT_REPRODUCED, REPRODUCED, Claim, Outcome, inconclusive
from benchtool.claims.core import value
from benchtool.claims.stats import proportion
from benchtool.contracts.data import DataBundle, Split
from benchtool.harness.limits.memorization import (
    CORRUPTION_FRACTIONS, FitHistory, MemorizationRecipe, corrupt_labels, fit_labels,
    gaussian_images, memorization_recipe, subsample,
)
from benchtool.models.trained import build_seeded
from benchtool.models.nets import DROPOUT_TYPES
from benchtool.models.training import evaluate

pytestmark = pytest.mark.bt(models=["mlp", "lenet"], datasets=["digits"], task="classification",
                            small=dict(models=["mlp"]))

FIT_LEVEL = 0.95  # "fits": training accuracy at least this (lower confidence bound)
CHANCE_MARGIN = 0.05  # "at chance": test accuracy within this of 1 / classes (both bounds), or
GAP_FRACTION = 0.1  # within this share of what clean labels teach (clean test accuracy - chance)


def decide_random_labels(claim: Claim, records: list) -> Outcome:
    """Fit: the Clopper-Pearson interval of the final training accuracy on fully random
    labels (p = 1) lies above FIT_LEVEL. Chance: the interval of the test accuracy lies
    within chance +- the margin (an equivalence test), the margin being the larger of
    CHANCE_MARGIN and GAP_FRACTION of the clean-label gap (test accuracy at p = 0 minus
    chance): "falls to chance" means keeping at most a tenth of what clean labels teach,
    which a test split as small as digits' (359) can resolve. Either interval on the wrong
    side decides "not reproduced"; an interval straddling its bound is inconclusive."""
    at = {"corruption": "labels", "p": 1.0, "dropout": False}
    train_acc, test_acc = value(records, "train_accuracy", **at), value(records, "test_accuracy", **at)
    n_train = value(records, "train_examples", recipe="memorization")
    n_test = value(records, "test_examples", recipe="memorization")
    classes = value(records, "num_classes", recipe="memorization")
    if None in (train_acc, test_acc, n_train, n_test, classes):
        return inconclusive("no p=1 fit with its train/test sizes recorded",
                            "a run of test_memorization that records train_examples, test_examples, num_classes")
    n_train, n_test = int(n_train), int(n_test)
    train = proportion(round(train_acc * n_train), n_train, claim.alpha)
    test = proportion(round(test_acc * n_test), n_test, claim.alpha)
    chance = 1.0 / classes
    clean = value(records, "test_accuracy", **{**at, "p": 0.0})
    margin = max(CHANCE_MARGIN, GAP_FRACTION * (clean - chance)) if clean is not None else CHANCE_MARGIN
    evidence = (f"random labels: train {train_acc:.3f} {train.interval()} (n={n_train}), "
                f"test {test_acc:.3f} {test.interval()} (n={n_test}) vs chance {chance:.3f} +- {margin:.3f}")
    fits, fails_to_fit = train.low >= FIT_LEVEL, train.high < FIT_LEVEL
    at_chance = chance - margin <= test.low and test.high <= chance + margin
    off_chance = test.low > chance + margin or test.high < chance - margin
    if fits and at_chance:
        return Outcome(REPRODUCED, evidence)
    if fails_to_fit or off_chance:
        why = f"train < {FIT_LEVEL}" if fails_to_fit else f"test off chance by > {margin:.3f}"
        return Outcome(NOT_REPRODUCED, f"{evidence} ({why})")
    if not fits:
        return inconclusive(evidence, f"a training accuracy interval above {FIT_LEVEL}: more training examples "
                                      "or epochs (budget default)")
    room = margin - abs(test_acc - chance)
    needed = math.ceil((1.96 / max(room, 1e-3)) ** 2 * test_acc * (1 - test_acc))
    return inconclusive(evidence, f"about {needed} test examples to fit the interval within chance +- {margin:.3f}")


CLAIMS = [
    Claim(
        id="zhang2017-random-labels",
        paper="Zhang, Bengio, Hardt, Recht & Vinyals, ICLR 2017",
        statement="A network fits fully random training labels while its test accuracy falls to chance.",
        suite="generalization",
        metrics=("train_accuracy", "test_accuracy", "train_examples", "test_examples", "num_classes"),
        test=f"Clopper-Pearson intervals: train >= {FIT_LEVEL}, test within chance +- max({CHANCE_MARGIN}, "
             f"{GAP_FRACTION} x (clean test accuracy - chance))",
        rule=decide_random_labels, per_model=True, figure="test_accuracy_vs_p",
    ),
]


def record_fit(bt_record: Any, history: FitHistory, setup: MemorizationRecipe, params: dict[str, Any]) -> None:
    """The scalar figures and learning curves of one memorization run."""
    params = {**params, "dropout": setup.keep_dropout}
    fitted_at = history.epochs_to_fit
    bt_record("train_accuracy", history.train_accuracy[-1], params=params)
    bt_record("best_train_accuracy", history.best_train_accuracy, params=params)
    bt_record("test_accuracy", history.test_accuracy[-1], params=params)
    bt_record("epochs_to_fit", fitted_at if fitted_at is not None else math.inf, unit="epochs", params=params)
    bt_record("steps_to_fit", fitted_at * history.steps_per_epoch if fitted_at is not None else math.inf,
              unit="steps", params=params)
    bt_record("seconds", history.seconds, unit="s", params=params)
    epochs = range(1, history.epochs + 1)
    bt_record.series("train_accuracy_curve", epochs, history.train_accuracy, x_label="epoch",
                     y_label="training accuracy", params=params)
    bt_record.series("test_accuracy_curve", epochs, history.test_accuracy, x_label="epoch",
                     y_label="test accuracy (true labels)", params=params)


def test_memorization(model: torch.nn.Module, dataset: DataBundle, bt_case: Any, bt_config: Any, bt_host: Any,
                      bt_record: Any) -> None:
    info = dataset.info
    if info.task != "classification" or not info.num_classes:
        pytest.skip(f"random-label memorization needs a classification dataset, not {info.name!r} ({info.task})")
    device, seed = bt_config.device, bt_config.seed
    spec = bt_host.registry.create("models", bt_case.model)
    setup = memorization_recipe(bt_config.budget)
    train = subsample(dataset.train, setup.train_examples, seed)
    bt_record("zoo_test_accuracy", evaluate(model, dataset.test, "classification", device)[1],
              params={"labels": "clean", "recipe": "zoo"})
    sizes = {"train_examples": len(train), "test_examples": len(dataset.test), "num_classes": info.num_classes}
    for name, number in {**setup.as_params(), **sizes}.items():
        bt_record(name, number, unit="examples" if name.endswith("_examples") else "", params={"recipe": "memorization"})

    def fit(split: Split, run_setup: MemorizationRecipe) -> FitHistory:
        return fit_labels(build_seeded(spec, info, seed), split, dataset.test, run_setup, seed=seed, device=device)

    final_train, final_test = [], []
    for p in CORRUPTION_FRACTIONS:
        corrupted = corrupt_labels(train.y, p, info.num_classes, seed)
        assert int(corrupted.resampled.sum()) == math.floor(p * len(train) + 0.5)
        history = fit(Split(train.x, corrupted.labels), setup)
        params = {"corruption": "labels", "p": p}
        bt_record("wrong_label_fraction", float((corrupted.labels != train.y).float().mean()),
                  params={**params, "dropout": setup.keep_dropout})
        record_fit(bt_record, history, setup, params)
        final_train.append(history.train_accuracy[-1])
        final_test.append(history.test_accuracy[-1])
    bt_record.series("train_accuracy_vs_p", CORRUPTION_FRACTIONS, final_train, x_label="label corruption p",
                     y_label="final training accuracy")
    bt_record.series("test_accuracy_vs_p", CORRUPTION_FRACTIONS, final_test, x_label="label corruption p",
                     y_label="test accuracy (true labels)")

    noise = Split(gaussian_images(train.x, seed), train.y)
    record_fit(bt_record, fit(noise, setup), setup, {"corruption": "random-pixels"})

    has_dropout = any(isinstance(m, DROPOUT_TYPES) and m.p > 0 for m in model.modules())
    if bt_config.budget != "small" and has_dropout:
        regularized = dataclasses.replace(setup, keep_dropout=True)
        random_labels = corrupt_labels(train.y, 1.0, info.num_classes, seed).labels
        record_fit(bt_record, fit(Split(train.x, random_labels), regularized), regularized,
                   {"corruption": "labels", "p": 1.0})
