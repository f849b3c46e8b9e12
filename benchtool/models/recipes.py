"""The zoo's fixed training recipes, per (model, dataset family) and budget.

``small`` is for smoke runs and CI on a CPU, ``default`` for a trustworthy benchmark,
``full`` for the published accuracy of each architecture. Every recipe is part of the
checkpoint cache key, so editing this table retrains exactly what it changes.
``python -m benchtool.models.recipes`` prints the whole table.

Families: ``digits`` (digits, digits-holdout), ``mnist`` (mnist, fashion-mnist),
``cifar10``, ``svhn``, ``toy`` (toy-regression). A dataset declares its family
(``DatasetInfo.recipe_family``); one that does not gets the family closest in size:
regression -> ``toy``; images of <= 256 values -> ``digits``, <= 1024 -> ``mnist``,
larger -> ``svhn`` (shift augmentation only, no flips).

``small`` is what the smoke test ``benchtool run --budget small`` trains: on the toy regression
``mlp`` trains 50 epochs there, six networks of it per run (zoo, ensemble members, own heads).

lenet on the mnist family trains 20 epochs at ``default``: 10 left it under-trained on
Fashion-MNIST (0.888 test accuracy; 20 reach the >= 0.90 of uncertainty-baselines' LeNet-5).

``lenet-at`` is lenet adversarially trained at the dataset's ``reference_eps`` (Linf; 0.1 of
the bounds' range where it declares none). Which adversary each budget uses:

- ``small`` and ``default``: FGSM with a random start ("fast AT", Wong, Rice & Kolter 2020),
  two forward-backward passes per batch; PGD-AT costs steps + 1, too slow on a CPU at those
  budgets (7-step PGD-AT of lenet on digits: 250 s on 2 cores against fast AT's ~60 s).
- ``full``: PGD-AT (Madry et al. 2018), 10 steps on digits and the mnist family, 7 on
  cifar10 and svhn.

resnet20 follows He et al. 2016 (SGD, momentum 0.9, lr 0.1, batch 128, weight decay
1e-4, 4-pixel shifts and flips on CIFAR-10), with a cosine schedule in place of the
step decay and, under ``full``, their 64k iterations (~164 epochs) on CIFAR-10.
"""

from __future__ import annotations

import math
from dataclasses import replace

from benchtool.config import check_budget
from benchtool.contracts.data import DatasetInfo
from benchtool.contracts.model import TrainRecipe
from benchtool.errors import choices_error

Row = dict[str, TrainRecipe]  # budget -> recipe

def _row(small: int, default: int, full: int, **common: object) -> Row:
    """One recipe per budget that differ only in their number of epochs."""
    return {
        budget: TrainRecipe(epochs=epochs, **common)  # type: ignore[arg-type]
        for budget, epochs in (("small", small), ("default", default), ("full", full))
    }


def _adversarial(row: Row, **adversaries: tuple[str, int]) -> Row:
    """``row`` with an adversary (name, steps) per budget; its eps comes from the dataset."""
    return {budget: replace(recipe, adversary=adversaries[budget][0], adversary_steps=adversaries[budget][1])
            for budget, recipe in row.items()}


_ADAM = {"optimizer": "adam", "lr": 1e-3, "schedule": "cosine"}
_RESNET = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "schedule": "cosine", "batch_size": 128}

RECIPES: dict[str, dict[str, Row]] = {
    "mlp": {
        "digits": _row(10, 30, 100, batch_size=64, **_ADAM),
        "mnist": _row(2, 10, 30, batch_size=128, **_ADAM),
        "cifar10": _row(5, 20, 50, batch_size=128, **_ADAM),
        "svhn": _row(5, 20, 50, batch_size=128, **_ADAM),
        "toy": _row(50, 300, 1000, batch_size=64, optimizer="adam", lr=3e-3, schedule="cosine"),
    },
    "lenet": {
        "digits": _row(10, 30, 100, batch_size=32, optimizer="adam", lr=3e-3, schedule="cosine"),
        "mnist": _row(2, 20, 30, batch_size=128, **_ADAM),
        "cifar10": _row(5, 30, 60, batch_size=128, augment="crop-flip", **_ADAM),
        "svhn": _row(3, 15, 40, batch_size=128, augment="crop", **_ADAM),
    },
    "lenet-at": {  # adversary_eps is filled in per dataset by lookup()
        "digits": _adversarial(_row(10, 30, 100, batch_size=32, optimizer="adam", lr=3e-3, schedule="cosine"),
                               small=("fgsm-rs", 0), default=("fgsm-rs", 0), full=("pgd", 10)),
        "mnist": _adversarial(_row(2, 20, 30, batch_size=128, **_ADAM),
                              small=("fgsm-rs", 0), default=("fgsm-rs", 0), full=("pgd", 10)),
        "cifar10": _adversarial(_row(5, 30, 60, batch_size=128, augment="crop-flip", **_ADAM),
                                small=("fgsm-rs", 0), default=("fgsm-rs", 0), full=("pgd", 7)),
        "svhn": _adversarial(_row(3, 15, 40, batch_size=128, augment="crop", **_ADAM),
                             small=("fgsm-rs", 0), default=("fgsm-rs", 0), full=("pgd", 7)),
    },
    "resnet20": {
        "digits": _row(8, 40, 100, **{**_RESNET, "batch_size": 64}, weight_decay=5e-4),
        "mnist": _row(1, 8, 20, weight_decay=5e-4, **_RESNET),
        "cifar10": _row(10, 60, 164, weight_decay=1e-4, augment="crop-flip", **_RESNET),
        "svhn": _row(3, 20, 40, weight_decay=5e-4, augment="crop", **_RESNET),
    },
}


def family(info: DatasetInfo) -> str:
    """The recipe family of a dataset (see the module docstring)."""
    if info.recipe_family is not None:
        return info.recipe_family
    if info.task == "regression":
        return "toy"
    size = math.prod(info.input_shape)
    return "digits" if size <= 256 else "mnist" if size <= 1024 else "svhn"


def lookup(model: str, info: DatasetInfo, budget: str) -> TrainRecipe:
    """The recipe for ``model`` on ``info`` at ``budget``."""
    check_budget(budget)
    rows = RECIPES.get(model)
    if rows is None:
        raise choices_error("zoo model", model, sorted(RECIPES))
    fam = family(info)
    if fam not in rows:
        raise choices_error(f"dataset family for model {model!r}", fam, sorted(rows))
    recipe = rows[fam][budget]
    if recipe.adversary != "none":
        recipe = replace(recipe, adversary_eps=info.attack_eps)
    return recipe


def describe() -> str:
    """The recipe table as text, one line per (model, family, budget)."""
    lines = []
    for model, rows in RECIPES.items():
        for fam, row in rows.items():
            for budget, recipe in row.items():
                fields = ", ".join(f"{k}={'reference_eps' if k == 'adversary_eps' else v}"
                                   for k, v in recipe.as_dict().items())
                lines.append(f"{model:9} {fam:8} {budget:8} {fields}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe())
