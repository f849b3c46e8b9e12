"""Out-of-distribution and shifted sets derived from a loaded dataset, without download.

Every image classification bundle carries these in ``DataBundle.ood`` (see
:data:`OOD_SETS`); labels are the true class for shifted images and :data:`NO_LABEL`
for images that belong to no in-distribution class.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from benchtool.contracts.data import DatasetInfo, Split
from benchtool.data.splits import SHIFT_STREAM, rng_for

NO_LABEL = -1  # the target of an OOD example that has no in-distribution class

ROTATION_DEGREES = 45.0
IMPULSE_FRACTION = 0.2

NOISE = "noise"
ROTATED = "rotated"
CORRUPTED = "corrupted"
HELDOUT_CLASSES = "heldout-classes"

OOD_SETS: dict[str, str] = {
    NOISE: "Gaussian noise images with the training pixels' mean and std, clipped to the bounds; "
    "as many as the test split; labels NO_LABEL",
    ROTATED: f"the test split rotated by {ROTATION_DEGREES:g} degrees (bilinear, corners filled with the "
    "lower bound); true labels (a covariate shift, as rotated MNIST in Ovadia et al. 2019)",
    CORRUPTED: f"the test split with impulse (salt-and-pepper) noise on {IMPULSE_FRACTION:.0%} of the pixels "
    "(Hendrycks & Dietterich 2019); true labels",
    HELDOUT_CLASSES: "images of the classes held out of training (e.g. digits 5-9 for digits-holdout), "
    "from every split; labels NO_LABEL",
}


def rotate_images(x: torch.Tensor, degrees: float, bounds: tuple[float, float]) -> torch.Tensor:
    """Rotate ``(N, C, H, W)`` images counter-clockwise as displayed (row 0 on top) about
    their centre, like ``torch.rot90`` for multiples of 90; pixels rotated in from outside
    the frame take the lower bound."""
    if x.ndim != 4:
        raise ValueError(f"rotate_images expects (N, C, H, W) images, got shape {tuple(x.shape)}")
    low, high = bounds
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    # affine_grid maps output (x right, y down) to input coordinates: the inverse rotation
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    rotated = F.grid_sample(x - low, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + low
    return rotated.clamp(low, high)


def impulse_noise(
    x: torch.Tensor, fraction: float, bounds: tuple[float, float], rng: np.random.Generator
) -> torch.Tensor:
    """Set ``fraction`` of the values to the lower or upper bound, each with probability 1/2."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"impulse fraction must be in [0, 1], got {fraction}")
    hit = torch.from_numpy(rng.random(x.shape) < fraction)
    salt = torch.from_numpy(rng.random(x.shape) < 0.5)
    low, high = bounds
    values = torch.where(salt, torch.full_like(x, high), torch.full_like(x, low))
    return torch.where(hit, values, x)


def gaussian_noise_images(
    n: int, like: torch.Tensor, bounds: tuple[float, float], rng: np.random.Generator
) -> torch.Tensor:
    """``n`` images of i.i.d. Gaussian pixels matching the mean and std of ``like``."""
    mean, std = float(like.mean()), float(like.std())
    shape = (n, *like.shape[1:])
    noise = torch.from_numpy(rng.normal(mean, std, size=shape).astype(np.float32))
    return noise.clamp(*bounds)


def image_shift_sets(info: DatasetInfo, train: Split, test: Split, seed: int) -> dict[str, Split]:
    """The ``noise``, ``rotated`` and ``corrupted`` sets for an image classification bundle."""
    rng = rng_for(seed, SHIFT_STREAM)
    no_labels = torch.full((len(test),), NO_LABEL, dtype=torch.int64)
    return {
        NOISE: Split(gaussian_noise_images(len(test), train.x, info.bounds, rng), no_labels),
        ROTATED: Split(rotate_images(test.x, ROTATION_DEGREES, info.bounds), test.y.clone()),
        CORRUPTED: Split(impulse_noise(test.x, IMPULSE_FRACTION, info.bounds, rng), test.y.clone()),
    }
