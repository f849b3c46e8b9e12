"""The zoo's networks, each built from a :class:`DatasetInfo` (shape, classes, bounds).

Every network starts with :class:`InputScaling`, so it takes inputs in the dataset's own
box and attacks and metrics work in data space.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from benchtool.contracts.data import DatasetInfo


DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def output_size(info: DatasetInfo) -> int:
    """Logits per class for classification, ``output_dim`` predictions for regression."""
    return info.num_classes if info.task == "classification" and info.num_classes else info.output_dim


def dropout_layers(model: nn.Module) -> list[nn.Module]:
    """The model's dropout modules (functional dropout inside ``forward`` is not visible)."""
    return [m for m in model.modules() if isinstance(m, DROPOUT_TYPES)]


class InputScaling(nn.Module):
    """Map the dataset's input box ``[low, high]`` affinely onto ``[-1, 1]``."""

    def __init__(self, bounds: tuple[float, float]) -> None:
        super().__init__()
        low, high = bounds
        self.center = (low + high) / 2.0
        self.half_range = (high - low) / 2.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.center) / self.half_range

    def extra_repr(self) -> str:
        return f"center={self.center}, half_range={self.half_range}"


class MLP(nn.Sequential):
    """A fully connected ReLU network with dropout after each hidden layer."""

    def __init__(self, info: DatasetInfo, hidden: tuple[int, ...] = (256, 256), dropout: float = 0.1) -> None:
        layers: list[nn.Module] = [InputScaling(info.bounds), nn.Flatten()]
        width = math.prod(info.input_shape)
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, output_size(info)))
        super().__init__(*layers)


class LeNet(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU, max-pooling, 'same' 5x5 convolutions (so it
    builds for any image size) and dropout before each fully connected layer, which MC
    dropout samples at test time (Gal & Ghahramani 2016)."""

    def __init__(self, info: DatasetInfo, channels: tuple[int, int] = (6, 16), dropout: float = 0.25) -> None:
        super().__init__()
        in_channels, height, width = info.input_shape
        self.features = nn.Sequential(
            InputScaling(info.bounds),
            nn.Conv2d(in_channels, channels[0], 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(channels[0], channels[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        )
        flat = channels[1] * math.ceil(math.ceil(height / 2) / 2) * math.ceil(math.ceil(width / 2) / 2)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout), nn.Linear(flat, 120), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(120, 84), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(84, output_size(info)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class PadShortcut(nn.Module):
    """He et al.'s option-A shortcut: subsample by ``stride`` and zero-pad the new channels."""

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.extra_channels // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BatchNorm layers with an identity (or option-A) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        same = stride == 1 and in_channels == out_channels
        self.shortcut: nn.Module = nn.Identity() if same else PadShortcut(stride, out_channels - in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """The CIFAR ResNet of He et al. 2016 (Sec. 4.2): a 3x3 stem, three stages of
    ``blocks`` basic blocks with 16, 32, 64 channels (strides 1, 2, 2), global average
    pooling and a linear classifier; 6 * blocks + 2 layers (blocks=3: ResNet-20)."""

    def __init__(self, info: DatasetInfo, blocks: int = 3, widths: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        in_channels = info.input_shape[0]
        self.stem = nn.Sequential(
            InputScaling(info.bounds),
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(),
        )
        stages: list[nn.Module] = []
        channels = widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                stages.append(BasicBlock(channels, width, stride))
                channels = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, output_size(info)))
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))
