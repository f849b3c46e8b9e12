"""The zoo's networks, each built from a :class:`DatasetInfo` (shape, classes, bounds).

Every network starts with :class:`InputScaling`, so it takes inputs in the dataset's own
box and attacks and metrics work in data space.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
import torch.fx
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


class _GradientInInputLayout(torch.autograd.Function):
    """The identity, whose backward hands the gradient back in the input's memory layout:
    convolutions with channels-last weights return input gradients channels-last, which
    ``.view`` in a caller (an attack plugin) would reject for a multi-channel image."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.channels_last = x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad.contiguous(memory_format=torch.channels_last if ctx.channels_last else torch.contiguous_format)


def gradient_in_input_layout(x: torch.Tensor) -> torch.Tensor:
    """``x``, whose gradient comes back in ``x``'s memory layout; ``x`` itself where no gradient
    flows (one node when traced by torch.fx, so the check runs on the real tensor)."""
    return _GradientInInputLayout.apply(x) if x.requires_grad else x


torch.fx.wrap("gradient_in_input_layout")


class InputScaling(nn.Module):
    """Map the dataset's input box ``[low, high]`` affinely onto ``[-1, 1]``; the gradient
    w.r.t. the input comes back in the input's own memory layout, whatever the layers after
    it use."""

    def __init__(self, bounds: tuple[float, float]) -> None:
        super().__init__()
        low, high = bounds
        self.center = (low + high) / 2.0
        self.half_range = (high - low) / 2.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (gradient_in_input_layout(x) - self.center) / self.half_range

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
    dropout samples at test time (Gal & Ghahramani 2016).

    Each convolution is pooled before its ReLU: both are monotone, so the values and the
    gradients are those of ReLU then pooling (tested bit for bit), with the ReLU on a quarter
    of the elements: forward and input gradient of 1000 28 x 28 images 1.17x faster on one
    thread (107 against 125 ms, channels-last). The two have no parameters, so the
    state_dict's keys are the same either way."""

    def __init__(self, info: DatasetInfo, channels: tuple[int, int] = (6, 16), dropout: float = 0.25) -> None:
        super().__init__()
        in_channels, height, width = info.input_shape
        self.features = nn.Sequential(
            InputScaling(info.bounds),
            nn.Conv2d(in_channels, channels[0], 5, padding=2), nn.MaxPool2d(2, ceil_mode=True), nn.ReLU(),
            nn.Conv2d(channels[0], channels[1], 5, padding=2), nn.MaxPool2d(2, ceil_mode=True), nn.ReLU(),
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


# Lehmer's "minimal standard" generator modulo the Mersenne prime 2^31 - 1 (Park & Miller 1988):
# small enough that every product fits int64 on every device.
_LEHMER_MODULUS = 2**31 - 1
_LEHMER_MULTIPLIER = 48271
_HASH_MULTIPLIER_BITS = 20  # 32-bit patterns times 20-bit multipliers, summed over a chunk of
_HASH_CHUNK = 1024  # 1024 values: below 2^62, so int64 never overflows
_KEY_STRIDE = 1_000_003  # a prime: distinct draw keys start their streams far apart


class RandomResizePad(nn.Module):
    """Random resizing and padding at inference (Xie, Wang, Zhang, Ren & Yuille, ICLR 2018,
    "Mitigating Adversarial Effects Through Randomization"), kept at the input size so a
    network trained on the dataset runs unchanged: each image is resized (nearest neighbour,
    as in their code) to a random ``r x r'`` with ``r`` uniform in ``[ceil(min_scale * H), H]``,
    then placed at a random offset in an ``H x W`` frame filled with the data's lower bound.

    The draw for an example is a pseudo-random function of its exact bits, ``seed`` and the
    stream ``key``: any change of the input, however small, draws afresh (so an attacker's
    gradient at one point is for a transformation the next point does not get), while the same
    input always gets the same draw (its k-th identical copy within one batch the next k draws
    of its stream, so Expectation over Transformation's repeated copies average over the
    randomness). That keeps evaluations reproducible and batch-independent and keeps the
    module stateless: nothing advances between calls, so the harness's model-unchanged and
    same-seed-same-result checks hold. Another ``key`` (:meth:`independent_draws`) gives a
    stream independent of key 0's, the one attacks see: the harness judges adversarial
    examples under its own key, as a deployed defense draws afresh for every query, so an
    attack cannot keep a point because of the draw it happened to get there. The per-position
    hash multipliers come from a ``torch.Generator`` seeded with ``seed``; they are a plain
    attribute, not a buffer, so the state_dict is the wrapped network's."""

    def __init__(self, input_shape: tuple[int, int, int], bounds: tuple[float, float], *,
                 min_scale: float = 0.8, seed: int = 0) -> None:
        super().__init__()
        if not 0 < min_scale <= 1:
            raise ValueError(f"min_scale must lie in (0, 1], got {min_scale}")
        _, height, width = input_shape
        self.height, self.width = height, width
        self.min_size = max(1, math.ceil(min_scale * height))
        self.fill = float(bounds[0])
        self.seed = seed
        self.key = 0  # the draw stream; key 0 is the one attacks see
        values = math.prod(input_shape)
        owned = torch.Generator().manual_seed(seed)
        self._multipliers = torch.randint(1, 2**_HASH_MULTIPLIER_BITS, (values,), generator=owned, dtype=torch.int64)

    def extra_repr(self) -> str:
        return f"sizes {self.min_size}..{self.height}, frame {self.height}x{self.width}, seed={self.seed}"

    @contextmanager
    def independent_draws(self, key: int) -> Iterator[None]:
        """Draw from stream ``key`` (independent of key 0's) inside the block."""
        before, self.key = self.key, int(key)
        try:
            yield
        finally:
            self.key = before

    def draws(self, x: torch.Tensor, count: int) -> list[torch.Tensor]:
        """``count`` pseudo-random int64 streams in ``[0, 2^31 - 1)``, one value per example,
        from the bits of each example (float32 bit patterns, hashed with fixed multipliers)."""
        flat = x.detach().to(torch.float32).reshape(len(x), -1).contiguous()
        bits = flat.view(torch.int32).to(torch.int64) & 0xFFFFFFFF
        multipliers = self._multipliers.to(x.device)
        start = (self.seed % _LEHMER_MODULUS + self.key * _KEY_STRIDE) % _LEHMER_MODULUS + 1
        state = torch.full((len(x),), start, dtype=torch.int64, device=x.device)
        for start in range(0, bits.shape[1], _HASH_CHUNK):  # each chunk's sum stays below 2^62
            chunk = (bits[:, start:start + _HASH_CHUNK] * multipliers[start:start + _HASH_CHUNK]).sum(1)
            state = (state * _LEHMER_MULTIPLIER + chunk % _LEHMER_MODULUS) % _LEHMER_MODULUS
        # the k-th copy of an input in a batch continues its stream k draws on: EOT's repeated
        # copies get fresh transformations, while one input alone always gets the same one
        order = torch.sort(state, stable=True).indices
        ranked = state[order]
        new_group = torch.ones_like(ranked, dtype=torch.bool)
        new_group[1:] = ranked[1:] != ranked[:-1]
        positions = torch.arange(len(ranked), device=x.device)
        starts = torch.cummax(torch.where(new_group, positions, torch.zeros_like(positions)), 0).values
        copy = torch.empty_like(positions)
        copy[order] = positions - starts
        state = (state + copy * 7919) % _LEHMER_MODULUS
        out = []
        for _ in range(count):
            state = (state * _LEHMER_MULTIPLIER + 1) % _LEHMER_MODULUS
            state = (state * _LEHMER_MULTIPLIER) % _LEHMER_MODULUS
            out.append(state)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, device = len(x), x.device
        size_draw, top_draw, left_draw = self.draws(x, 3)
        rows_out = size_draw % (self.height - self.min_size + 1) + self.min_size  # [n]
        cols_out = torch.clamp(torch.round(rows_out.double() * self.width / self.height).long(), 1, self.width)
        top = top_draw % (self.height - rows_out + 1)
        left = left_draw % (self.width - cols_out + 1)
        rows = torch.arange(self.height, device=device)[None, :] - top[:, None]  # [n, H] position in the resized
        cols = torch.arange(self.width, device=device)[None, :] - left[:, None]
        row_ok = (rows >= 0) & (rows < rows_out[:, None])
        col_ok = (cols >= 0) & (cols < cols_out[:, None])
        # nearest neighbour: output pixel i of a size-r image reads input pixel floor(i * H / r)
        src_rows = torch.clamp(rows.clamp(min=0) * self.height // rows_out[:, None], max=self.height - 1)
        src_cols = torch.clamp(cols.clamp(min=0) * self.width // cols_out[:, None], max=self.width - 1)
        batch = torch.arange(n, device=device)[:, None, None, None]
        channels = torch.arange(x.shape[1], device=device)[None, :, None, None]
        out = x[batch, channels, src_rows[:, None, :, None], src_cols[:, None, None, :]]
        inside = (row_ok[:, None, :, None] & col_ok[:, None, None, :])
        return torch.where(inside, out, torch.full_like(out, self.fill))


class RandomizedInput(nn.Module):
    """A trained network behind an input-randomization layer: ``net(transform(x))``. The
    state_dict is the network's own (``net.`` prefixed). It is a
    :class:`~benchtool.contracts.model.RandomizedModel`: its transform's draws can come from
    an independent stream."""

    def __init__(self, transform: RandomResizePad, net: nn.Module) -> None:
        super().__init__()
        self.transform = transform
        self.net = net

    def independent_draws(self, key: int) -> AbstractContextManager[None]:
        return self.transform.independent_draws(key)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.transform(x))
