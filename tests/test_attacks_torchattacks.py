"""fgsm and pgd (random start off) give the same adversarial examples as torchattacks.

torchattacks declares torchvision as a requirement but does not import it: CI installs it
with ``pip install --no-deps torchattacks`` so the CPU torch build stays in place.
"""

from __future__ import annotations

import pytest
import torch

from benchtool.contracts.data import DatasetInfo
from benchtool.models.zoo import LeNetSpec
from benchtool_attacks.fgsm import FGSM
from benchtool_attacks.pgd import PGD

torchattacks = pytest.importorskip(
    "torchattacks", reason="peer comparison needs torchattacks (pip install --no-deps torchattacks)"
)

DIGITS_LIKE = DatasetInfo("digits", "classification", (1, 8, 8), 10, (0.0, 1.0))


@pytest.fixture(scope="module")
def lenet_and_batch() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = LeNetSpec().build(DIGITS_LIKE).eval()
    generator = torch.Generator().manual_seed(1)
    x = torch.rand((64, 1, 8, 8), generator=generator)
    x[:, :, :2] = 0.0  # some pixels on the bounds, where clipping decides
    x[:, :, -1] = 1.0
    y = torch.randint(0, 10, (64,), generator=generator)
    return model, x, y


@pytest.mark.parametrize("eps", [0.0, 0.03, 0.1, 0.3])
def test_fgsm_matches_torchattacks(lenet_and_batch, eps):
    model, x, y = lenet_and_batch
    ours = FGSM()(model, x, y, eps, bounds=(0.0, 1.0)).x_adv
    theirs = torchattacks.FGSM(model, eps=eps)(x, y)
    assert (ours - theirs).abs().max().item() <= 1e-6


@pytest.mark.parametrize(("eps", "steps", "rel_stepsize"), [(0.03, 10, 0.25), (0.1, 20, 0.1), (0.3, 40, 1 / 30)])
def test_pgd_without_random_start_matches_torchattacks(lenet_and_batch, eps, steps, rel_stepsize):
    model, x, y = lenet_and_batch
    attack = PGD(steps=steps, rel_stepsize=rel_stepsize, random_start=False)
    ours = attack(model, x, y, eps, bounds=(0.0, 1.0)).x_adv
    theirs = torchattacks.PGD(model, eps=eps, alpha=attack.stepsize(eps), steps=steps, random_start=False)(x, y)
    assert (ours - theirs).abs().max().item() <= 1e-6
    assert (ours - x).abs().max().item() > 0.5 * eps  # the comparison is not between two no-ops
