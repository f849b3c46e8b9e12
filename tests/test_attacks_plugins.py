"""What each built-in attack does, on small models whose answers are known: affine
classifiers (exact distances to the boundary) and a tiny trained conv net."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from benchtool.contracts.attack import perturbation_norms
from benchtool.harness.robustness import evaluate
from benchtool_attacks import _common as common
from benchtool_attacks._common import uniform_l2
from benchtool_attacks.cw_l2 import CarliniWagnerL2
from benchtool_attacks.deepfool import DeepFool
from benchtool.models.nets import RandomizedInput, RandomResizePad
from benchtool_attacks.eot import EOT, EOTPGD, ExpectedPrediction, RandomTransformations, draws_randomly
from benchtool_attacks.fgsm import FGSM
from benchtool_attacks.pgd import PGD
from benchtool_attacks.pgd_l2 import PGDL2
from benchtool_attacks.square import SquareAttack

BOUNDS = (0.0, 1.0)
LINF = {"fgsm": FGSM, "pgd": PGD, "eot": EOT, "square": SquareAttack}
L2 = {"pgd-l2": PGDL2, "cw-l2": CarliniWagnerL2, "deepfool": DeepFool}


@pytest.fixture(scope="module")
def blobs() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A conv net trained to ~100% on three well-separated 1x6x6 blobs, and 60 test points."""
    generator = torch.Generator().manual_seed(0)
    centers = torch.rand((3, 1, 6, 6), generator=generator)
    y = torch.randint(0, 3, (360,), generator=generator)
    x = (centers[y] + 0.1 * torch.randn((360, 1, 6, 6), generator=generator)).clamp(0, 1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[:300]), y[:300]).backward()
        optimizer.step()
    return model.eval(), x[300:], y[300:]


@pytest.mark.parametrize("name", [*LINF, *L2])
def test_attack_breaks_the_model_at_large_eps(blobs, name):
    model, x, y = blobs
    attack = {**LINF, **L2}[name]().at_budget("small")
    eps = [0.0, 0.5] if name in LINF else [0.0, 3.0]
    zero, large = evaluate(attack, model, x, y, eps, bounds=BOUNDS)
    assert zero.clean_accuracy > 0.9
    assert torch.equal(zero.adversarial_correct, zero.clean_correct)
    assert large.robust_accuracy < 0.5 * large.clean_accuracy


def test_pgd_at_least_as_strong_as_fgsm(blobs):
    model, x, y = blobs
    for eps in (0.1, 0.2, 0.3):
        [fgsm] = evaluate(FGSM(), model, x, y, [eps], bounds=BOUNDS)
        [pgd] = evaluate(PGD(), model, x, y, [eps], bounds=BOUNDS)
        assert pgd.robust_accuracy <= fgsm.robust_accuracy


@pytest.mark.parametrize(("targeted_attack", "eps"), [(PGD(), 0.6), (PGDL2(), 4.0), (EOT(samples=2), 0.6),
                                             (CarliniWagnerL2().at_budget("small"), 6.0), (SquareAttack(queries=300), 0.6)])
def test_targeted_attacks_reach_the_target(blobs, targeted_attack, eps):
    model, x, y = blobs
    target = (y + 1) % 3
    x_adv = targeted_attack(model, x, target, eps, bounds=BOUNDS, targeted=True).x_adv
    assert (model(x_adv).argmax(1) == target).float().mean() > 0.8


def affine_binary(seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 2-class affine classifier, interior inputs (so the box never binds), their predicted
    labels and the exact L2 distance of each to the decision boundary."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).eval()
    with torch.no_grad():  # the boundary passes through the centre of the box, so the box never binds
        model[1].bias.copy_(-model[1].weight @ torch.full((16,), 0.5))
    x = 0.45 + 0.1 * torch.rand((8, 1, 4, 4), generator=torch.Generator().manual_seed(seed))
    logits = model(x).detach()
    w = model[1].weight.detach()
    distance = (logits[:, 0] - logits[:, 1]).abs() / (w[0] - w[1]).norm()
    return model, x, logits.argmax(1), distance


@given(seed=st.integers(0, 1000))
def test_deepfool_steps_exactly_across_an_affine_boundary(seed):
    model, x, label, distance = affine_binary(seed)
    found = DeepFool().minimal(model, x, label, BOUNDS)
    norms = perturbation_norms(found - x, "l2")
    w = model[1].weight.detach()
    expected = 1.02 * (distance + 1e-4 / (w[0] - w[1]).norm())
    assert torch.allclose(norms, expected, rtol=1e-4, atol=1e-6)
    assert (model(found).argmax(1) != label).all()


def test_cw_finds_the_minimal_perturbation_of_an_affine_classifier():
    model, x, label, distance = affine_binary(3)
    cw = CarliniWagnerL2(binary_search_steps=9, max_iterations=300, initial_const=1.0)
    found = cw.minimal(model, x, label, BOUNDS, targeted=False)
    norms = perturbation_norms(found - x, "l2")
    assert (model(found).argmax(1) != label).all()
    assert (norms >= distance * (1 - 1e-4)).all()  # nothing adversarial lies closer
    assert (norms <= distance * 1.05 + 1e-3).all()


def test_cw_early_abort_is_per_example(blobs):
    """Each example leaves a search step when its own loss stalls (the authors' rule at their
    batch of one), so what it finds does not depend on the examples batched beside it."""
    model, x, y = blobs
    cw = CarliniWagnerL2(binary_search_steps=4, max_iterations=100, initial_const=1.0)
    alone = torch.cat([cw.minimal(model, x[i:i + 1], y[i:i + 1], BOUNDS, targeted=False) for i in range(6)])
    batched = cw.minimal(model, x, y, BOUNDS, targeted=False)[:6]
    assert torch.allclose(alone, batched, atol=1e-5)
    assert (model(batched).argmax(1) != y[:6]).all()


def test_eot_with_the_identity_distribution_is_pgd(blobs):
    model, x, y = blobs
    still = {"rotation": 0.0, "scale": (1.0, 1.0), "translation": 0.0, "brightness": 0.0, "noise": 0.0}
    eot = EOT(samples=1, random_start=False, **still)(model, x, y, 0.2, bounds=BOUNDS).x_adv
    pgd = PGD(random_start=False)(model, x, y, 0.2, bounds=BOUNDS).x_adv
    assert (eot - pgd).abs().max().item() <= 1e-6


def test_eot_pgd_on_a_deterministic_model_is_pgd_exactly(blobs):
    model, x, y = blobs
    assert not draws_randomly(model, x)
    eot = EOTPGD(samples=10)(model, x, y, 0.2, bounds=BOUNDS).x_adv
    assert torch.equal(eot, PGD()(model, x, y, 0.2, bounds=BOUNDS).x_adv)


def test_eot_pgd_attacks_a_randomized_models_mean_prediction(blobs):
    model, x, y = blobs
    randomized = RandomizedInput(RandomResizePad((1, 6, 6), BOUNDS, min_scale=0.5), model).eval()
    assert draws_randomly(randomized, x)
    expected = ExpectedPrediction(randomized, 7)(x)
    assert torch.allclose(expected.exp().sum(1), torch.ones(len(x)))
    copies = torch.softmax(randomized(x.repeat(7, 1, 1, 1)), 1).reshape(7, len(x), -1).mean(0)
    assert torch.allclose(expected.exp(), copies, atol=1e-6)  # the copies are the draws it averages
    one, many = EOTPGD(samples=1)(randomized, x, y, 0.2, bounds=BOUNDS), EOTPGD()(randomized, x, y, 0.2, bounds=BOUNDS)
    assert not torch.equal(one.x_adv, many.x_adv)
    assert (many.x_adv - x).abs().max() <= 0.2 + 1e-6


def test_eot_pgd_anneals_its_step_on_a_randomized_model_only(blobs, monkeypatch):
    """The draws make each gradient an estimate: on a randomized model the step falls from
    anneal_from * eps to 0 on a cosine; a deterministic model keeps PGD's constant step."""
    model, x, y = blobs
    randomized = RandomizedInput(RandomResizePad((1, 6, 6), BOUNDS, min_scale=0.5), model).eval()
    attack = EOTPGD(steps=8, samples=3)
    steps = attack.annealed_steps(0.2)
    assert steps[0] == pytest.approx(0.1) and all(a > b > 0 for a, b in zip(steps, steps[1:]))
    assert steps[4] == pytest.approx(0.05)  # half-way down the cosine
    taken: list[list[float]] = []
    ascend = EOTPGD.ascend
    monkeypatch.setattr(EOTPGD, "ascend", lambda self, m, *a, **k: taken.append(a[3]) or ascend(self, m, *a, **k))
    attack(randomized, x, y, 0.2, bounds=BOUNDS)
    attack(model, x, y, 0.2, bounds=BOUNDS)
    assert taken == [steps, [attack.stepsize(0.2)] * 8]
    with pytest.raises(ValueError, match="anneal_from must lie in"):
        EOTPGD(anneal_from=0.0)


@pytest.mark.parametrize("eot_attack", [EOTPGD(samples=7), EOT(samples=7)], ids=["eot-pgd", "eot"])
def test_eot_attacks_find_the_same_points_in_calls_of_any_size(blobs, eot_attack, monkeypatch):
    """On a CPU the draws of a batch go through the model in calls of a bounded number of rows;
    a randomized model sees every copy of an example in one call, so its draws, and the attack's
    result, do not depend on that bound."""
    model, x, y = blobs
    randomized = RandomizedInput(RandomResizePad((1, 6, 6), BOUNDS, min_scale=0.5), model).eval()
    whole = eot_attack(randomized, x, y, 0.2, bounds=BOUNDS).x_adv
    calls: list[int] = []
    randomized.register_forward_pre_hook(lambda module, args: calls.append(len(args[0])))
    monkeypatch.setattr(common, "CPU_ROWS_PER_CALL", 20)  # 2 examples x 7 draws per call for eot-pgd
    chunked = eot_attack(randomized, x, y, 0.2, bounds=BOUNDS).x_adv
    chunks = calls[1:] if isinstance(eot_attack, EOTPGD) else calls  # eot-pgd first probes 2 x 16 rows
    assert max(chunks) <= 20 and len(chunks) > 2 * eot_attack.params["steps"]
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)


def test_transformations_are_seeded_and_bounded():
    transform = EOT().transformations
    x = torch.rand((16, 1, 8, 8))
    one = transform(x, torch.Generator().manual_seed(3), BOUNDS)
    two = transform(x, torch.Generator().manual_seed(3), BOUNDS)
    assert torch.equal(one, two) and one.min() >= 0 and one.max() <= 1
    assert not torch.equal(one, transform(x, torch.Generator().manual_seed(4), BOUNDS))
    identity = RandomTransformations(0.0, (1.0, 1.0), 0.0, 0.0, 0.0)
    assert torch.allclose(identity(x, torch.Generator(), BOUNDS), x, atol=1e-6)


def test_square_moves_pixels_to_the_vertices_of_the_ball(blobs):
    model, x, y = blobs
    eps = 0.1
    x_adv = SquareAttack(queries=50)(model, x, y, eps, bounds=BOUNDS).x_adv
    delta = (x_adv - x).abs()
    clipped = (x_adv == 0) | (x_adv == 1)
    assert ((delta - eps).abs() < 1e-6)[~clipped].all()


@given(eps=st.floats(0.01, 3.0), seed=st.integers(0, 100))
def test_l2_random_start_lies_in_the_ball(eps, seed):
    x = torch.rand((5, 1, 4, 4))
    start = uniform_l2(x, eps, torch.Generator().manual_seed(seed))
    assert (perturbation_norms(start - x, "l2") <= eps * (1 + 1e-5)).all()
