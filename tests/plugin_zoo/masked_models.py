"""Registers ``lenet-quantized``: the trained lenet behind an input layer that rounds every
pixel to one of 5 levels. Its input gradient is zero everywhere: gradient attacks see nothing,
a black-box attack still works, and the robustness suite's masking checks must flag it."""

import torch
from torch import nn

from benchtool import hookimpl
from benchtool.models.zoo import DerivedSpec, LeNetSpec


class Quantized(nn.Module):
    """A quantizing input layer in front of a network: its input gradient is zero everywhere."""

    def __init__(self, net: nn.Module, levels: int = 4) -> None:
        super().__init__()
        self.net, self.levels = net, levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * self.levels) / self.levels)


class LeNetQuantizedSpec(DerivedSpec):
    name = "lenet-quantized"
    base = LeNetSpec

    def wrap(self, net, info):
        return Quantized(net)


@hookimpl
def benchtool_register_models(registry):
    registry.add(LeNetQuantizedSpec)
