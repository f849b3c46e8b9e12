"""Hot paths of the attacks: one PGD step and PGD-20 through the harness on lenet/digits,
next to the hand-written loop they must keep up with (``scripts/bench_pgd.py`` prints the
ratios side by side, with torchattacks)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchtool.harness.robustness import evaluate
from benchtool.data import load_dataset
from benchtool.data.digits import Digits
from benchtool.models.zoo import LeNetSpec
from benchtool_attacks.pgd import PGD
from benchtool_attacks.reference import textbook_pgd

EPS = 0.1
BOUNDS = (0.0, 1.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lenet_digits() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    bundle = load_dataset(Digits(), root=Path("/nonexistent"), seed=0)
    torch.manual_seed(0)
    return LeNetSpec().build(bundle.info).eval(), bundle.test.x, bundle.test.y


def hand_written_pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> torch.Tensor:
    return textbook_pgd(model, x, y, EPS, 2.5 * EPS / steps, steps, BOUNDS)


@pytest.mark.parametrize("steps", [1, 20], ids=["one-step", "pgd-20"])
def test_pgd_through_the_harness(benchmark, lenet_digits, steps: int) -> None:
    model, x, y = lenet_digits
    attack = PGD(steps=steps, random_start=False)
    x_adv = benchmark(lambda: attack(model, x, y, EPS, bounds=BOUNDS).x_adv)
    assert torch.equal(x_adv, hand_written_pgd(model, x, y, steps))


def test_pgd20_hand_written_loop(benchmark, lenet_digits) -> None:
    model, x, y = lenet_digits
    benchmark(lambda: hand_written_pgd(model, x, y, 20))


def test_pgd20_evaluate_with_metrics(benchmark, lenet_digits) -> None:
    """The suite's path: warnings, determinism check, attack and a fresh forward pass."""
    model, x, y = lenet_digits
    [report] = benchmark(lambda: evaluate(PGD(steps=20), model, x, y, [EPS], bounds=BOUNDS))
    assert report.robust_accuracy <= report.clean_accuracy
