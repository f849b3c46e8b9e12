"""The zoo's model specs: each builds its network for any dataset of a supported kind and
names its recipe from :mod:`benchtool.models.recipes`. A :class:`DerivedSpec` (``lenet-randomized``)
trains nothing of its own: it wraps the trained network of its base spec."""

from __future__ import annotations

from torch import nn

from benchtool.contracts.data import DatasetInfo
from benchtool.contracts.model import ModelSpec, TrainRecipe
from benchtool.models.nets import MLP, LeNet, RandomizedInput, RandomResizePad, ResNet
from benchtool.models.recipes import lookup as recipe_for


class MlpSpec(ModelSpec):
    """Fully connected network, 2 hidden layers of 256 ReLU units, dropout 0.1."""

    name = "mlp"
    tasks = frozenset({"classification", "regression"})

    def build(self, info: DatasetInfo) -> nn.Module:
        return MLP(info)

    def recipe(self, info: DatasetInfo, budget: str) -> TrainRecipe:
        return recipe_for(self.name, info, budget)


class ImageSpec(ModelSpec):
    """A convolutional network: needs (C, H, W) image inputs. On a CPU it runs channels-last:
    on one thread ``lenet``'s forward pass and input gradient are 1.6-2.0x faster on 28x28 and
    32x32 inputs and 1.15x on 8x8 digits, ``resnet20``'s 1.03-1.16x (``scripts/bench_layout.py``)."""

    channels_last_on_cpu = True

    def supports(self, info: DatasetInfo) -> bool:
        return super().supports(info) and len(info.input_shape) == 3

    def recipe(self, info: DatasetInfo, budget: str) -> TrainRecipe:
        return recipe_for(self.name, info, budget)


class LeNetSpec(ImageSpec):
    """LeNet-5 (LeCun et al. 1998) with ReLU and dropout 0.25 before each dense layer (for MC dropout)."""

    name = "lenet"

    def build(self, info: DatasetInfo) -> nn.Module:
        return LeNet(info)


class ResNet20Spec(ImageSpec):
    """ResNet-20 for CIFAR (He et al. 2016): 3x3 basic blocks, BatchNorm, option-A shortcuts."""

    name = "resnet20"

    def build(self, info: DatasetInfo) -> nn.Module:
        return ResNet(info, blocks=3)


class LeNetAdversarialSpec(LeNetSpec):
    """LeNet-5 adversarially trained at the dataset's reference eps (Linf): PGD adversarial
    training (Madry et al., ICLR 2018) or, where that is too slow for the budget on a CPU, FGSM
    with a random start ("fast AT", Wong, Rice & Kolter, ICLR 2020); the recipe table
    (:mod:`benchtool.models.recipes`) says which budget uses which."""

    name = "lenet-at"


class DerivedSpec(ImageSpec):
    """A model made from the trained network of ``base`` (same recipe, same cached weights) by
    :meth:`wrap`; ``build`` wraps a fresh base network, ``inner`` finds the base network in
    the wrapped model (where a user's ``--bt-checkpoint`` for the base loads)."""

    base: type[ModelSpec]

    def supports(self, info: DatasetInfo) -> bool:
        return self.base().supports(info)

    def recipe(self, info: DatasetInfo, budget: str) -> TrainRecipe:
        return self.base().recipe(info, budget)

    def build(self, info: DatasetInfo) -> nn.Module:
        return self.wrap(self.base().build(info), info)

    def wrap(self, net: nn.Module, info: DatasetInfo) -> nn.Module:
        raise NotImplementedError

    def inner(self, model: nn.Module) -> nn.Module:
        return model.net  # type: ignore[return-value]


class LeNetRandomizedSpec(DerivedSpec):
    """The trained ``lenet`` behind random resizing and padding at inference (Xie et al.,
    ICLR 2018): a deliberately gradient-masking model. Plain PGD overstates its robustness;
    Expectation over Transformation (EOT) takes most of that back (Athalye, Carlini & Wagner,
    ICML 2018, "Obfuscated Gradients Give a False Sense of Security")."""

    name = "lenet-randomized"
    base = LeNetSpec
    min_scale = 0.8  # resized to 80-100% of the frame: 23..28 pixels on 28x28, 7..8 on 8x8

    def wrap(self, net: nn.Module, info: DatasetInfo) -> nn.Module:
        transform = RandomResizePad(info.input_shape, info.bounds, min_scale=self.min_scale)  # type: ignore[arg-type]
        return RandomizedInput(transform, net)
