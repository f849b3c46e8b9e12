"""The zoo's model specs: each builds its network for any dataset of a supported kind and
names its recipe from :mod:`benchtool.models.recipes`."""

from __future__ import annotations

from torch import nn

from benchtool.contracts.data import DatasetInfo
from benchtool.contracts.model import ModelSpec, TrainRecipe
from benchtool.models import recipes
from benchtool.models.nets import MLP, LeNet, ResNet


class MlpSpec(ModelSpec):
    """Fully connected network, 2 hidden layers of 256 ReLU units, dropout 0.1."""

    name = "mlp"
    tasks = frozenset({"classification", "regression"})

    def build(self, info: DatasetInfo) -> nn.Module:
        return MLP(info)

    def recipe(self, info: DatasetInfo, budget: str) -> TrainRecipe:
        return recipes.lookup(self.name, info, budget)


class ImageSpec(ModelSpec):
    """A convolutional network: needs (C, H, W) image inputs."""

    def supports(self, info: DatasetInfo) -> bool:
        return super().supports(info) and len(info.input_shape) == 3

    def recipe(self, info: DatasetInfo, budget: str) -> TrainRecipe:
        return recipes.lookup(self.name, info, budget)


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
