"""The zoo builds for every registered dataset it supports, and every pair has a recipe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchtool.config import BUDGETS
from benchtool.contracts.data import DatasetInfo
from benchtool.contracts.model import TrainRecipe
from benchtool.data.plugin import BUILTIN_DATASETS
from benchtool.errors import UsageError
from benchtool.host import load_host
from benchtool.models import recipes
from benchtool.models.nets import PadShortcut
from benchtool.models.plugin import BUILTIN_MODELS
from benchtool.models.zoo import LeNetSpec, MlpSpec, ResNet20Spec

INFOS = [dataset().info() for dataset in BUILTIN_DATASETS] + [
    DatasetInfo("odd-images", "classification", (2, 13, 9), 3, (-1.0, 1.0)),
    DatasetInfo("vectors", "classification", (7,), 4, (0.0, 5.0)),
    DatasetInfo("multi-output", "regression", (3,), None, (-2.0, 2.0), output_dim=2),
]


@pytest.mark.parametrize("spec_cls", BUILTIN_MODELS, ids=lambda s: s.name)
@pytest.mark.parametrize("info", INFOS, ids=lambda i: i.name)
def test_every_model_builds_for_every_dataset_it_supports(spec_cls: type, info: DatasetInfo) -> None:
    spec = spec_cls()
    if not spec.supports(info):
        assert info.task not in spec.tasks or len(info.input_shape) != 3
        return
    model = spec.build(info).eval()
    with torch.no_grad():
        out = model(torch.rand(5, *info.input_shape) * (info.bounds[1] - info.bounds[0]) + info.bounds[0])
    expected = info.num_classes if info.task == "classification" else info.output_dim
    assert out.shape == (5, expected) and torch.isfinite(out).all()
    for budget in BUDGETS:
        recipe = spec.recipe(info, budget)
        assert isinstance(recipe, TrainRecipe) and recipe.epochs >= 1


def test_support_matrix() -> None:
    digits, toy = BUILTIN_DATASETS[0]().info(), next(d for d in BUILTIN_DATASETS if d.name == "toy-regression")().info()
    assert MlpSpec().supports(digits) and MlpSpec().supports(toy)
    assert LeNetSpec().supports(digits) and not LeNetSpec().supports(toy)
    assert ResNet20Spec().supports(digits) and not ResNet20Spec().supports(toy)


def test_resnet20_matches_he_et_al() -> None:
    cifar = DatasetInfo("cifar10", "classification", (3, 32, 32), 10, (0.0, 1.0))
    model = ResNet20Spec().build(cifar)
    weighted = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == 20  # 1 stem conv + 3 stages x 3 blocks x 2 convs + 1 linear
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(0.27e6, rel=0.02)  # "0.27M" in the paper
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 19
    assert sum(isinstance(m, PadShortcut) for m in model.modules()) == 2  # option A, no projection weights


def test_lenet_has_dropout_for_mc_dropout() -> None:
    model = LeNetSpec().build(BUILTIN_DATASETS[0]().info())
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 3
    x = torch.rand(4, 1, 8, 8)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))  # stochastic in train mode
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_recipe_lookup_families_and_errors() -> None:
    from benchtool.data.local import Cifar10

    assert recipes.family(DatasetInfo("digits-like", "classification", (1, 8, 8), 5, (0, 1))) == "digits"
    assert recipes.family(DatasetInfo("mine", "classification", (3, 64, 64), 5, (0, 1))) == "svhn"
    assert recipes.family(DatasetInfo("mine", "regression", (4,), None, (0, 1))) == "toy"
    # the family is the dataset's own declaration, never looked up by its name
    assert recipes.family(DatasetInfo("cifar10", "classification", (3, 32, 32), 10, (0, 1))) == "svhn"
    cifar = Cifar10().info()
    assert recipes.family(cifar) == "cifar10"
    full = ResNet20Spec().recipe(cifar, "full")
    assert (full.optimizer, full.lr, full.momentum, full.weight_decay, full.batch_size, full.augment) == (
        "sgd", 0.1, 0.9, 1e-4, 128, "crop-flip"
    )
    with pytest.raises(UsageError, match="unknown budget 'huge'"):
        LeNetSpec().recipe(cifar, "huge")
    with pytest.raises(UsageError, match="dataset family for model 'lenet'.*'toy'"):
        recipes.lookup("lenet", DatasetInfo("toy-regression", "regression", (1,), None, (-6, 6)), "small")
    assert "resnet20  cifar10  full" in recipes.describe()


def test_plugin_registers_the_zoo() -> None:
    host = load_host(["benchtool.models.plugin"], use_entry_points=False)
    assert host.registry.names("models") == ["lenet", "lenet-at", "lenet-randomized", "mlp", "resnet20"]


@pytest.mark.parametrize("shape", [(1, 28, 28), (2, 13, 9)], ids=["even", "odd"])
def test_lenet_pools_before_its_relu_with_relu_first_results(shape: tuple[int, int, int]) -> None:
    """Pooling then ReLU is ReLU then pooling, values and gradients bit for bit (windows of
    negatives included, and ceil_mode's partial windows on odd sizes), parameters included:
    LeNet pools first, on four times fewer elements, with the same state_dict."""
    info = DatasetInfo(name="images", task="classification", input_shape=shape, num_classes=5, bounds=(0.0, 1.0))
    torch.manual_seed(0)
    network = LeNetSpec().build(info).eval()
    relu_first = nn.Sequential(*network.features)
    for i in (3, 6):  # conv, pool, relu -> conv, relu, pool (after the input scaling)
        relu_first[i - 1], relu_first[i] = network.features[i], network.features[i - 1]
    assert [type(m) for m in relu_first[1:4]] == [nn.Conv2d, nn.ReLU, nn.MaxPool2d]
    assert network.features.state_dict().keys() == relu_first.state_dict().keys()
    x = torch.rand(16, *shape).requires_grad_(True)
    pooled, relu = network.features(x), relu_first(x)
    assert (pooled == 0).any()  # some windows held only negatives
    assert torch.equal(pooled, relu)
    weight = network.features[1].weight
    first = torch.autograd.grad(pooled.square().sum(), (x, weight))
    second = torch.autograd.grad(relu.square().sum(), (x, weight))
    assert all(torch.equal(a, b) for a, b in zip(first, second))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_input_gradients_come_back_in_the_inputs_layout(layout: torch.memory_format) -> None:
    """Channels-last weights make convolutions return channels-last input gradients; an attack
    that ``.view``s the gradient of a 3-channel image must still get the layout it passed."""
    info = DatasetInfo(name="rgb", task="classification", input_shape=(3, 12, 12), num_classes=4, bounds=(0.0, 1.0))
    torch.manual_seed(0)
    network = LeNetSpec().build(info).eval().to(memory_format=torch.channels_last)
    x = torch.rand(5, 3, 12, 12).contiguous(memory_format=layout).requires_grad_(True)
    (grad,) = torch.autograd.grad(network(x).sum(), x)
    assert grad.is_contiguous(memory_format=layout)
    reference = LeNetSpec().build(info).eval()
    reference.load_state_dict(network.state_dict())
    x_plain = x.detach().contiguous().requires_grad_(True)
    (expected,) = torch.autograd.grad(reference(x_plain).sum(), x_plain)
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)
