"""The zoo's defended models: lenet-at (adversarial training at the dataset's reference eps)
and lenet-randomized (random resize and pad at inference around the trained lenet).

Fast: nothing here trains more than one epoch on digits."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from benchtool.contracts._state import ModelSnapshot
from benchtool.contracts.data import DatasetInfo
from benchtool.contracts.model import RandomizedModel, TrainRecipe
from benchtool.data import load_dataset
from benchtool.data.digits import Digits
from benchtool.data.local import Cifar10, FashionMnist, Mnist
from benchtool.harness.robustness import JUDGING_KEY, evaluate
from benchtool.models import recipes, train, trained_model
from benchtool.models.checkpoints import cache_key
from benchtool.models.nets import LeNet, RandomizedInput, RandomResizePad
from benchtool.models.training import adversarial_examples, check_recipe
from benchtool.models.zoo import LeNetAdversarialSpec, LeNetRandomizedSpec, LeNetSpec

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DIGITS = Digits().info()
FMNIST = FashionMnist().info()


@pytest.fixture(scope="module")
def digits():
    return load_dataset(Digits(), root=Path("."), seed=0)


# --- declarations and recipes ---------------------------------------------------------------


def test_datasets_declare_their_reference_eps_and_family() -> None:
    assert (DIGITS.reference_eps, DIGITS.recipe_family) == (0.1, "digits")
    assert (FMNIST.reference_eps, FMNIST.recipe_family) == (0.1, "mnist")
    assert Mnist().info().reference_eps == 0.3
    assert Cifar10().info().reference_eps == pytest.approx(8 / 255)
    mine = DatasetInfo("mine", "classification", (1, 8, 8), 10, (-1.0, 1.0))
    assert mine.attack_eps == pytest.approx(0.2)  # none declared: 0.1 of the range
    with pytest.raises(ValueError, match="reference_eps"):
        DatasetInfo("bad", "classification", (1, 8, 8), 10, (0.0, 1.0), reference_eps=2.0)


def test_a_declared_family_picks_the_recipe() -> None:
    info = DatasetInfo("my-fashion", "classification", (1, 28, 28), 10, (0, 1), recipe_family="digits")
    assert recipes.family(info) == "digits"


@pytest.mark.parametrize(("info", "eps"), [(DIGITS, 0.1), (FMNIST, 0.1), (Mnist().info(), 0.3)])
def test_lenet_at_trains_at_the_reference_eps(info: DatasetInfo, eps: float) -> None:
    spec = LeNetAdversarialSpec()
    for budget, adversary in (("small", "fgsm-rs"), ("default", "fgsm-rs"), ("full", "pgd")):
        recipe = check_recipe(spec.recipe(info, budget))
        assert (recipe.adversary, recipe.adversary_eps) == (adversary, eps)
        assert recipe.adversary_steps >= (1 if adversary == "pgd" else 0)
        plain = LeNetSpec().recipe(info, budget)  # the same optimisation as lenet, plus the adversary
        assert (recipe.epochs, recipe.lr, recipe.batch_size) == (plain.epochs, plain.lr, plain.batch_size)


def test_standard_recipes_keep_their_cache_keys() -> None:
    """The adversarial fields join a recipe's dict only when it trains adversarially."""
    plain = LeNetSpec().recipe(DIGITS, "default")
    assert "adversary" not in plain.as_dict()
    assert "adversary" not in cache_key("lenet", DIGITS, 0, plain)["recipe"]
    defended = LeNetAdversarialSpec().recipe(DIGITS, "default")
    assert cache_key("lenet-at", DIGITS, 0, defended)["recipe"]["adversary_eps"] == 0.1


def test_lenet_default_on_the_mnist_family_trains_20_epochs() -> None:
    assert LeNetSpec().recipe(FMNIST, "default").epochs == 20


@pytest.mark.parametrize("field", [{"adversary": "bim"}, {"adversary": "pgd", "adversary_eps": 0.1},
                                   {"adversary": "fgsm-rs"}])
def test_a_bad_adversarial_recipe_is_rejected(field: dict) -> None:
    with pytest.raises(Exception, match="adversary"):
        check_recipe(TrainRecipe(epochs=1, **field))


# --- adversarial training -------------------------------------------------------------------


@pytest.mark.parametrize(("adversary", "steps"), [("fgsm-rs", 0), ("pgd", 3)])
def test_adversarial_examples_stay_in_the_ball_and_raise_the_loss(digits, adversary: str, steps: int) -> None:
    torch.manual_seed(0)
    model = LeNet(DIGITS)
    train(model, digits, TrainRecipe(epochs=1, batch_size=64), seed=0, device="cpu", progress=False)
    model.train()
    x, y = digits.test.x[:64], digits.test.y[:64]
    recipe = TrainRecipe(epochs=1, adversary=adversary, adversary_eps=0.1, adversary_steps=steps)
    x_adv = adversarial_examples(model, x, y, recipe, (0.0, 1.0), torch.Generator().manual_seed(0))
    again = adversarial_examples(model, x, y, recipe, (0.0, 1.0), torch.Generator().manual_seed(0))
    assert torch.equal(x_adv, again)  # seeded
    assert model.training  # the caller's mode is back
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    model.eval()
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y)


def test_one_epoch_of_adversarial_training_runs(digits) -> None:
    recipe = TrainRecipe(epochs=1, batch_size=64, adversary="fgsm-rs", adversary_eps=0.1)
    model = LeNet(DIGITS)
    history = train(model, digits, recipe, seed=0, device="cpu", progress=False)
    assert history.epochs == 1 and torch.isfinite(torch.tensor(history.train_loss)).all()
    assert not model.training


# --- input randomization -------------------------------------------------------------------------


def test_random_resize_pad_is_a_function_of_each_example() -> None:
    layer = RandomResizePad((1, 28, 28), (0.0, 1.0), min_scale=0.8)
    x = torch.rand(16, 1, 28, 28)
    out = layer(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, layer(x))  # the same input, the same draw: reproducible
    assert torch.equal(out[3:4], layer(x[3:4]))  # batch-independent
    assert not list(layer.parameters()) and not list(layer.buffers())
    # any change of the input draws afresh: 16 tiny nudges do not all get the same transform
    nudged = layer(x[:1] + 1e-3 * torch.rand(16, 1, 28, 28))
    frames = {(int((row := (n[0] > 0).any(1).nonzero())[0]), int(row[-1])) for n in nudged}
    assert len(frames) > 1 or not torch.allclose(nudged[0], nudged[1:], atol=2e-3)


def test_copies_of_one_input_in_a_batch_get_fresh_draws() -> None:
    """EOT repeats its batch to average over the model's randomness: the copies must differ."""
    layer = RandomResizePad((1, 28, 28), (0.0, 1.0), min_scale=0.8)
    x = torch.rand(1, 1, 28, 28)
    copies = layer(x.repeat(8, 1, 1, 1))
    assert torch.equal(copies[0], layer(x)[0])  # the first copy: the input's own draw
    assert len({tuple(c.flatten().tolist()) for c in copies}) > 2


def test_random_resize_pad_passes_gradients_and_fills_with_the_lower_bound() -> None:
    layer = RandomResizePad((1, 28, 28), (-1.0, 1.0), min_scale=0.5)
    x = torch.full((8, 1, 28, 28), 0.5, requires_grad=True)
    out = layer(x)
    assert set(out.detach().unique().tolist()) <= {-1.0, 0.5}
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert (grad.reshape(8, -1).sum(1) > 0).all()
    assert torch.equal(RandomResizePad((1, 8, 8), (0.0, 1.0), min_scale=1.0)(x[:, :, :8, :8]), x[:, :, :8, :8])


def test_lenet_randomized_wraps_the_trained_lenet_weights(digits, tmp_path: Path) -> None:
    weights = LeNet(DIGITS).state_dict()
    path = tmp_path / "lenet.pt"
    torch.save(weights, path)
    model = trained_model(LeNetRandomizedSpec(), digits, seed=0, budget="small", device="cpu",
                          cache_dir=tmp_path / "cache", checkpoint=path)
    assert isinstance(model, RandomizedInput) and not model.training
    assert all(torch.equal(v, weights[k]) for k, v in model.net.state_dict().items())
    assert LeNetRandomizedSpec().recipe(DIGITS, "default") == LeNetSpec().recipe(DIGITS, "default")


def test_lenet_randomized_keeps_the_attack_harness_contract(digits, tmp_path: Path) -> None:
    """model-unchanged and same-seed-same-x_adv hold for a gradient attack on it."""
    from benchtool_attacks.pgd import PGD

    model = LeNetRandomizedSpec().wrap(LeNet(DIGITS), DIGITS).eval()
    snapshot = ModelSnapshot.take(model)
    x, y = digits.test.x[:16], digits.test.y[:16]
    attempt = PGD(steps=3).attempt(model, x, y, [0.1], bounds=(0.0, 1.0), seed=0, repeat=True)
    assert attempt.violations == []
    assert snapshot.violation(model, "pgd") is None


def test_the_zoo_registers_the_defended_models() -> None:
    from benchtool.host import load_host

    names = load_host().registry.names("models")
    assert {"lenet-at", "lenet-randomized"} <= set(names)


def test_independent_draws_give_another_stream_and_restore_the_attacks_one() -> None:
    layer = RandomResizePad((1, 28, 28), (0.0, 1.0), min_scale=0.8)
    model = RandomizedInput(layer, torch.nn.Flatten())
    assert isinstance(model, RandomizedModel)
    x = torch.rand(32, 1, 28, 28)
    attacks_view = layer(x)
    with model.independent_draws(1):
        judged = layer(x)
        assert torch.equal(judged, layer(x))  # still a function of the input within a stream
    assert torch.equal(layer(x), attacks_view)  # stream 0 again after the block
    differ = sum(not torch.equal(a, b) for a, b in zip(attacks_view, judged))
    assert differ > 16  # most examples draw another transformation


class _Keyed(torch.nn.Module):
    """Right on every example under the judging stream, wrong under the attack's stream."""

    def __init__(self) -> None:
        super().__init__()
        self.key = 0

    @contextmanager
    def independent_draws(self, key: int):
        before, self.key = self.key, key
        try:
            yield
        finally:
            self.key = before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), 4)
        logits[:, 1 if self.key == JUDGING_KEY else 2] = 1.0
        return logits + 0 * x.sum()


def test_the_harness_judges_a_randomized_model_under_its_own_stream() -> None:
    from benchtool_attacks.fgsm import FGSM

    model, x, y = _Keyed(), torch.rand(8, 1, 4, 4), torch.ones(8, dtype=torch.int64)
    assert (model(x).argmax(1) != y).all()  # the attack's stream
    (report,) = evaluate(FGSM(), model, x, y, [0.0], bounds=(0.0, 1.0), determinism_examples=0)
    assert report.clean_accuracy == 1.0 and report.robust_accuracy == 1.0
    assert model.key == 0
