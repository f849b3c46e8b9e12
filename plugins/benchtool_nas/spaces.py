"""Search spaces: Zoph & Le's layer-wise CNN space and its tabulated small variant.

Zoph & Le (ICLR 2017, Sec. 4.1): for every convolutional layer the controller selects a
filter height and width in [1, 3, 5, 7], a number of filters in [24, 36, 48, 64] and,
in one of their experiments, strides in [1, 2, 3]. We add the number of layers as the
walk's first decision, so an architecture's encoding holds exactly the decisions of the
layers it has (canonical: no unused slots).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

from torch import nn

from benchtool import hookimpl
from benchtool.contracts.data import DatasetInfo
from benchtool.contracts.nas import Architecture, Decision, SearchSpace
from benchtool.errors import UsageError
from benchtool.models.nets import InputScaling

LAYER_FIELDS = ("filter_height", "filter_width", "stride_height", "stride_width", "filters")
TABLE_FILE = Path(__file__).with_name("conv_chain_small.json")


class ConvChainNet(nn.Sequential):
    """A chain of conv-BatchNorm-ReLU layers ('same' padding) and a linear classifier."""

    def __init__(self, layers: list[dict[str, int]], info: DatasetInfo) -> None:
        channels, height, width = info.input_shape
        modules: list[nn.Module] = [InputScaling(info.bounds)]
        for layer in layers:
            kh, kw, sh, sw = (layer[k] for k in LAYER_FIELDS[:4])
            modules += [
                nn.Conv2d(channels, layer["filters"], (kh, kw), stride=(sh, sw), padding=(kh // 2, kw // 2)),
                nn.BatchNorm2d(layer["filters"]),
                nn.ReLU(),
            ]
            channels, height, width = layer["filters"], math.ceil(height / sh), math.ceil(width / sw)
        modules += [nn.Flatten(), nn.Linear(channels * height * width, int(info.num_classes or 0))]
        super().__init__(*modules)


class ConvChain(SearchSpace):
    """Zoph & Le (ICLR 2017) CNN space: 1-4 conv layers, each with filter height and
    width, stride height and width, and a number of filters."""

    name = "conv-chain"
    layer_counts: ClassVar[tuple[int, ...]] = (1, 2, 3, 4)
    filter_sizes: ClassVar[tuple[int, ...]] = (1, 3, 5, 7)
    strides: ClassVar[tuple[int, ...]] = (1, 2, 3)
    filter_counts: ClassVar[tuple[int, ...]] = (24, 36, 48, 64)

    def decisions(self) -> tuple[Decision, ...]:
        choices = (self.filter_sizes, self.filter_sizes, self.strides, self.strides, self.filter_counts)
        per_layer = [
            Decision(f"layer{i}.{field}", values)
            for i in range(1, max(self.layer_counts) + 1)
            for field, values in zip(LAYER_FIELDS, choices)
        ]
        return (Decision("layers", self.layer_counts), *per_layer)

    def next_decision(self, prefix: Architecture) -> int | None:
        if not prefix:
            return 0
        length = 1 + len(LAYER_FIELDS) * self.layer_counts[prefix[0]]
        return len(prefix) if len(prefix) < length else None

    @property
    def size(self) -> int:
        per_layer = len(self.filter_sizes) ** 2 * len(self.strides) ** 2 * len(self.filter_counts)
        return sum(per_layer**layers for layers in self.layer_counts)

    def layers(self, arch: Architecture) -> list[dict[str, int]]:
        """The per-layer settings of ``arch``, first layer first."""
        values = self.describe(arch)
        return [
            {field: values[f"layer{i}.{field}"] for field in LAYER_FIELDS}
            for i in range(1, values["layers"] + 1)
        ]

    def build(self, arch: Architecture, info: DatasetInfo) -> nn.Module:
        if info.task != "classification" or len(info.input_shape) != 3:
            raise UsageError(
                f"search space {self.name!r} builds image classifiers; dataset {info.name!r} is a "
                f"{info.task} task with inputs of shape {info.input_shape}"
            )
        return ConvChainNet(self.layers(arch), info)


class ConvChainSmall(ConvChain):
    """conv-chain with 1-2 layers and two values per decision (1,056 architectures),
    tabulated on digits: every architecture trained with 2 seeds, shipped with the package."""

    name = "conv-chain-small"
    layer_counts = (1, 2)
    filter_sizes = (1, 3)
    strides = (1, 2)
    filter_counts = (8, 32)

    def table_path(self) -> Path | None:
        return TABLE_FILE


@hookimpl
def benchtool_register_search_spaces(registry) -> None:  # noqa: ANN001 - a benchtool.registry.Registrar
    """Add the conv-chain spaces."""
    registry.add(ConvChain)
    registry.add(ConvChainSmall)
