"""APGD-CE, APGD-DLR and APGD-T (Croce & Hein, ICML 2020), Linf and L2: the schedule and
losses against the paper's formulas, the conformance checks, and on a small conv net trained
on scikit-learn's digits: robust accuracy against torchattacks' APGD/APGDT with matched
settings (within 2 binomial standard errors) and APGD at least as strong as PGD-20 (one-sided
exact McNemar test on the discordant pairs at alpha 0.05)."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import pytest
import torch
from torch import nn

from benchtool.claims.stats import mcnemar_exact
from benchtool.data.digits import Digits
from benchtool.harness.robustness import RobustnessReport, evaluate
from benchtool_attacks.apgd import (
    ATTACKS, APGDCE, APGDDLR, APGDT, APGDCEL2, APGDDLRL2, APGDTL2, checkpoints, dlr_loss, targeted_dlr_loss,
)
from benchtool_attacks.pgd import PGD
from benchtool_attacks.pgd_l2 import PGDL2

BOUNDS = (0.0, 1.0)
EXAMPLES = 200  # test digits attacked: robust accuracy near 1/2 has a standard error of 0.035
EPS = {"linf": 0.1, "l2": 0.5}  # where the net below keeps about half its accuracy
ALPHA = 0.05


# --- the paper's formulas ------------------------------------------------------------------


def test_checkpoints_follow_the_paper():
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]  # the authors' code gives the same for 100
    assert checkpoints(20) == [5, 9, 12, 14, 16, 18, 19, 20]  # ceil(p_j * 20)
    assert checkpoints(1) == [1]


def test_dlr_losses_match_their_formulas():
    logits = torch.tensor([[4.0, 1.0, 3.0, 0.0], [0.5, 2.0, 1.0, -1.0]])
    y = torch.tensor([0, 2])
    # example 0: sorted 4, 3, 1, 0; true class on top -> -(4 - 3) / (4 - 1)
    # example 1: sorted 2, 1, .5, -1; true logit 1 -> -(1 - 2) / (2 - .5)
    assert torch.allclose(dlr_loss(logits, y), torch.tensor([-1 / 3, 1 / 1.5]))
    target = torch.tensor([3, 1])
    # -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)
    assert torch.allclose(targeted_dlr_loss(logits, y, target), torch.tensor([-4 / 3.5, 1 / 2.25]))
    shifted = 7.0 * logits - 3.0  # DLR is invariant to a positive scale and a shift of the logits
    assert torch.allclose(dlr_loss(shifted, y), dlr_loss(logits, y))
    assert torch.allclose(targeted_dlr_loss(shifted, y, target), targeted_dlr_loss(logits, y, target))


@pytest.mark.parametrize(("attack_class", "classes"), [(APGDDLR, 2), (APGDT, 3), (APGDDLRL2, 2), (APGDTL2, 3)])
def test_dlr_needs_enough_classes(attack_class, classes):
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, classes)).eval()
    x = torch.rand((3, 1, 2, 2), generator=torch.Generator().manual_seed(0))
    with pytest.raises(Exception, match=rf"needs a model with at least {classes + 1} classes, this one has {classes}"):
        attack_class()(model, x, torch.zeros(3, dtype=torch.long), 0.1, bounds=BOUNDS)


def test_budgets():
    assert APGDCE().params == {"steps": 100, "restarts": 1, "rho": 0.75}
    assert APGDT().params == {"steps": 100, "restarts": 1, "rho": 0.75, "targets": 9}
    assert APGDCE().at_budget("small").params["steps"] == 20
    assert APGDTL2().at_budget("small").params == {"steps": 20, "restarts": 1, "rho": 0.75, "targets": 3}
    assert APGDDLR(steps=7).at_budget("small").params["steps"] == 7  # explicit settings win
    with pytest.raises(ValueError, match="targets must be an int >= 1"):
        APGDT(targets=0)


# --- on digits -------------------------------------------------------------------------------


@cache
def digits_net() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small conv net trained on digits (~99% test accuracy, in under a second) and the
    first EXAMPLES test digits."""
    bundle = Digits().load(root=Path("."), seed=0)
    train = bundle.train
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(15):
        order = torch.randperm(len(train.x), generator=generator)
        for start in range(0, len(order), 128):
            batch = order[start:start + 128]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(train.x[batch]), train.y[batch]).backward()
            optimizer.step()
    model.eval().requires_grad_(False)
    return model, bundle.test.x[:EXAMPLES], bundle.test.y[:EXAMPLES]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@cache
def report(name: str) -> RobustnessReport:
    """Our attack (paper settings) or PGD-20 through the harness, at EPS of its norm."""
    attack = {a.name: a for a in ATTACKS}.get(name) or {"pgd-20": lambda: PGD(steps=20),
                                                         "pgd-l2-20": lambda: PGDL2(steps=20)}[name]
    attack = attack()
    model, x, y = digits_net()
    [found] = evaluate(attack, model, x, y, [EPS[attack.norm]], bounds=BOUNDS, determinism_examples=0)
    return found


def torchattacks_robust(name: str) -> torch.Tensor:
    """torchattacks' APGD / APGDT with our defaults (100 steps, 1 restart, rho 0.75, 9 targets)."""
    torchattacks = pytest.importorskip(
        "torchattacks", reason="peer comparison needs torchattacks (pip install --no-deps torchattacks)")
    model, x, y = digits_net()
    attack = {a.name: a for a in ATTACKS}[name]
    settings = {"norm": "Linf" if attack.norm == "linf" else "L2", "eps": EPS[attack.norm], "steps": 100,
                "n_restarts": 1, "rho": 0.75}
    with torch.random.fork_rng():  # torchattacks seeds the global generator
        if attack.loss == "dlr-targeted":
            peer = torchattacks.APGDT(model, n_classes=10, **settings)
        else:
            peer = torchattacks.APGD(model, loss=attack.loss, **settings)
        x_adv = peer(x, y)
    with torch.no_grad():
        return (model(x).argmax(1) == y) & (model(x_adv).argmax(1) == y)


@pytest.mark.parametrize("name", [a.name for a in ATTACKS])
def test_robust_accuracy_matches_torchattacks(name):
    ours = report(name)
    theirs = torchattacks_robust(name).float().mean().item()
    assert 0.9 > ours.clean_accuracy * 0.9 > ours.robust_accuracy > 0.1  # a comparison inside (0, 1)
    pooled = (ours.robust_accuracy + theirs) / 2
    standard_error = math.sqrt(pooled * (1 - pooled) / ours.n)
    assert abs(ours.robust_accuracy - theirs) <= 2 * standard_error, (
        f"{name}: robust accuracy {ours.robust_accuracy:.3f}, torchattacks {theirs:.3f} (n={ours.n}, "
        f"SE {standard_error:.3f})")


@pytest.mark.parametrize("name", [a.name for a in ATTACKS])
def test_apgd_at_least_as_strong_as_pgd20(name):
    apgd = report(name)
    pgd = report("pgd-20" if apgd.norm == "linf" else "pgd-l2-20")
    only_apgd_robust = int((apgd.robust_correct & ~pgd.robust_correct).sum())
    only_pgd_robust = int((pgd.robust_correct & ~apgd.robust_correct).sum())
    p_value = mcnemar_exact(only_apgd_robust, only_pgd_robust)  # H1: APGD leaves more examples robust
    assert p_value >= ALPHA, (
        f"{name} leaves {only_apgd_robust} examples robust that PGD-20 breaks, PGD-20 {only_pgd_robust} that "
        f"{name} breaks: one-sided exact McNemar p = {p_value:.3g} < {ALPHA}")


def test_fooled_examples_stop_querying():
    apgd = report("apgd-ce")
    # Every attacked example costs at most the start + 100 steps; the fooled ones stop early.
    correct = int(apgd.clean_correct.sum())
    assert apgd.gradient_queries < 0.8 * correct * 101
    assert apgd.robust_accuracy < apgd.clean_accuracy


def test_targets_are_the_most_likely_other_classes():
    logits = torch.tensor([[0.0, 5.0, 1.0, 3.0, 2.0]])
    targets = APGDT(targets=9).targets(logits, torch.tensor([1]))
    assert [int(t) for t in targets] == [3, 4, 2, 0]  # capped at classes - 1
