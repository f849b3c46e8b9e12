"""Out-of-distribution and shifted sets derived from a loaded dataset, without download.

Every image classification bundle carries these in ``DataBundle.ood`` (see
:data:`OOD_SETS`); labels are the true class for shifted images and :data:`NO_LABEL`
for images that belong to no in-distribution class.

Shift intensities (built on demand, by the uncertainty suite): :data:`CORRUPTIONS` holds
twelve corruptions of MNIST-C (Mu & Gilmer 2019, "MNIST-C: A Robustness Benchmark for
Computer Vision"), each at five intensities (:data:`INTENSITIES`), for the box plots of
Ovadia et al. 2019 ("Can You Trust Your Model's Uncertainty?", NeurIPS, Figure 2);
:func:`corrupt` applies one, :func:`corrupted_test_sets` yields them all. Parameters in
pixels are MNIST-C's at 28x28, scaled by the image side / 28 (8x8 digits: x 0.29). Ovadia's
own series: :func:`rotation_sets` (0 to 180 degrees in steps of 15) and
:func:`translation_sets` (0 to 26 pixels in steps of 2 at 28x28, rolled with wraparound).
Everything is torch + NumPy, seeded (:func:`corruption_rng`: one stream per seed and
corruption, shared by its five intensities), within the images' bounds, labels kept.
``docs/shift.md`` has the table of every corruption and its levels (:func:`corruption_table`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

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
UNIFORM_NOISE = "uniform-noise"
HELDOUT_CLASSES = "heldout-classes"
FAR_DIGITS = "digits"

OOD_SETS: dict[str, str] = {
    NOISE: "Gaussian noise images with the training pixels' mean and std, clipped to the bounds; "
    "as many as the test split; labels NO_LABEL",
    ROTATED: f"the test split rotated by {ROTATION_DEGREES:g} degrees (bilinear, corners filled with the "
    "lower bound); true labels (a covariate shift, as rotated MNIST in Ovadia et al. 2019)",
    CORRUPTED: f"the test split with impulse (salt-and-pepper) noise on {IMPULSE_FRACTION:.0%} of the pixels "
    "(Hendrycks & Dietterich 2019); true labels",
    UNIFORM_NOISE: "images of i.i.d. pixels uniform over the bounds; as many as the test split; labels NO_LABEL",
    HELDOUT_CLASSES: "images of the classes held out of training: digits 5-9 from every split for "
    "digits-holdout, the test split's classes 5-9 for fashion-mnist-holdout; labels NO_LABEL",
    FAR_DIGITS: "far-OOD for Fashion-MNIST: scikit-learn's 1797 handwritten digits in MNIST's layout "
    "(8x8 resized to 20x20, centred in 28x28), a stand-in for the MNIST-as-OOD protocol of DUQ and DDU; "
    "labels NO_LABEL",
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


def uniform_noise_images(
    n: int, shape: Sequence[int], bounds: tuple[float, float], rng: np.random.Generator
) -> torch.Tensor:
    """``n`` images of ``shape`` whose pixels are i.i.d. uniform over ``bounds``."""
    low, high = bounds
    return torch.from_numpy(rng.uniform(low, high, size=(n, *shape)).astype(np.float32))


def image_shift_sets(info: DatasetInfo, train: Split, test: Split, seed: int) -> dict[str, Split]:
    """The ``noise``, ``rotated``, ``corrupted`` and ``uniform-noise`` sets for an image
    classification bundle (drawn in that order from one seeded stream)."""
    rng = rng_for(seed, SHIFT_STREAM)
    no_labels = torch.full((len(test),), NO_LABEL, dtype=torch.int64)
    return {
        NOISE: Split(gaussian_noise_images(len(test), train.x, info.bounds, rng), no_labels),
        ROTATED: Split(rotate_images(test.x, ROTATION_DEGREES, info.bounds), test.y.clone()),
        CORRUPTED: Split(impulse_noise(test.x, IMPULSE_FRACTION, info.bounds, rng), test.y.clone()),
        UNIFORM_NOISE: Split(uniform_noise_images(len(test), info.input_shape, info.bounds, rng), no_labels.clone()),
    }


# --- shift intensities: MNIST-C corruptions at five levels, Ovadia's rotation and translation ---

INTENSITIES = (1, 2, 3, 4, 5)
REFERENCE_SIDE = 28  # MNIST-C's parameters are pixels of a 28x28 image; scaled by side / 28 here
ROTATION_SERIES = tuple(range(0, 181, 15))  # Ovadia et al. 2019, rotated MNIST: degrees
TRANSLATION_STEP = 2  # Ovadia et al. 2019, translated MNIST: pixels rolled, in steps of 2 of 28
FOG_MAP_FACTOR = 2  # the plasma map's side: the next power of two >= this x the image side
GLASS_SWAP_CHANCE = 0.5
MOTION_ANGLE = 45.0  # motion blur's direction: uniform in +- this many degrees, per image

UnitImages = torch.Tensor  # (N, C, H, W) images scaled to [0, 1]
Apply = Callable[[UnitImages, Any, float, np.random.Generator], UnitImages]


@dataclass(frozen=True)
class Corruption:
    """One corruption: what it does, its five levels' parameters (at 28x28) and the function
    ``apply(images in [0, 1], level parameters, side / 28, rng)``."""

    name: str
    description: str
    parameters: str  # what each level's numbers are
    levels: tuple[Any, ...]
    apply: Apply = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.levels) != len(INTENSITIES):
            raise ValueError(f"corruption {self.name!r} has {len(self.levels)} levels, expected {len(INTENSITIES)}")


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)`` images, edges replicated; ``sigma`` in pixels."""
    if sigma <= 0:
        return x.clone()
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    n, c, h, w = x.shape
    flat = x.reshape(n * c, 1, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kernel.reshape(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), kernel.reshape(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def warp(x: torch.Tensor, matrix: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Resample ``(N, C, H, W)`` images: output pixel ``p`` (pixels from the centre, x right,
    y down) reads input ``matrix[i] @ p + offset[i]``, bilinear, zero outside the frame."""
    n, _, h, w = x.shape
    scale = torch.tensor([2.0 / w, 2.0 / h], dtype=x.dtype)  # pixels -> affine_grid's [-1, 1]
    theta = torch.cat([matrix.to(x.dtype) * scale[:, None] / scale[None, :],
                       (offset.to(x.dtype) * scale)[:, :, None]], dim=2)
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _signs(rng: np.random.Generator, *shape: int) -> torch.Tensor:
    return torch.from_numpy(rng.choice(np.array([-1.0, 1.0]), size=shape))


def _linear(x: UnitImages, matrices: torch.Tensor) -> UnitImages:
    return warp(x, matrices, torch.zeros(len(x), 2))


def _shot_noise(x: UnitImages, photons: float, _: float, rng: np.random.Generator) -> UnitImages:
    counts = rng.poisson(x.double().numpy() * photons)
    return torch.from_numpy(counts / photons).to(x.dtype)


def _impulse_noise(x: UnitImages, amount: float, _: float, rng: np.random.Generator) -> UnitImages:
    return impulse_noise(x, amount, (0.0, 1.0), rng)


def local_swaps(x: torch.Tensor, reach: int, chance: float, rng: np.random.Generator) -> torch.Tensor:
    """Glass blur's shuffle: visiting the pixels at least ``reach`` from the border bottom-right
    to top-left, each swaps with probability ``chance`` with a pixel up to ``reach`` away
    (per image)."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w).clone()
    rows = torch.arange(n)
    for i in range(h - 1 - reach, reach - 1, -1):
        for j in range(w - 1 - reach, reach - 1, -1):
            swap = torch.from_numpy(rng.random(n) < chance)[:, None]
            dy, dx = rng.integers(-reach, reach + 1, size=(2, n))
            there = torch.from_numpy((i + dy) * w + (j + dx))
            here_values, there_values = flat[:, :, i * w + j].clone(), flat[rows, :, there]
            flat[:, :, i * w + j] = torch.where(swap, there_values, here_values)
            flat[rows, :, there] = torch.where(swap, here_values, there_values)
    return flat.reshape(n, c, h, w)


def _glass_blur(x: UnitImages, level: tuple[float, int, int], scale: float, rng: np.random.Generator) -> UnitImages:
    sigma, reach, passes = level
    # a reach under one pixel (small images) keeps a one-pixel reach but swaps less often
    chance = GLASS_SWAP_CHANCE * min(1.0, reach * scale)
    out = gaussian_blur(x, sigma * scale)
    for _ in range(passes):
        out = local_swaps(out, max(1, round(reach * scale)), chance, rng)
    return gaussian_blur(out, sigma * scale)


def _motion_blur(x: UnitImages, level: tuple[float, float], scale: float, rng: np.random.Generator) -> UnitImages:
    radius, sigma = level[0] * scale, level[1] * scale
    angle = torch.from_numpy(np.radians(rng.uniform(-MOTION_ANGLE, MOTION_ANGLE, len(x))))
    direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    identity = torch.eye(2).expand(len(x), 2, 2)
    total, weights = torch.zeros_like(x), 0.0
    for step in range(int(radius) + 1):  # a one-sided Gaussian trail, as ImageMagick's -motion-blur
        weight = math.exp(-(step**2) / (2 * sigma**2))
        total += weight * warp(x, identity, -step * direction)
        weights += weight
    return total / weights


def _shear(x: UnitImages, amount: float, _: float, rng: np.random.Generator) -> UnitImages:
    angle = amount * _signs(rng, len(x))
    matrices = torch.zeros(len(x), 2, 2, dtype=torch.float64)
    matrices[:, 0, 0], matrices[:, 0, 1], matrices[:, 1, 1] = 1.0, -torch.sin(angle), torch.cos(angle)
    return _linear(x, matrices)


def _scale(x: UnitImages, factor: float, _: float, __: np.random.Generator) -> UnitImages:
    return _linear(x, torch.eye(2).expand(len(x), 2, 2) / factor)


def _rotate(x: UnitImages, radians: float, _: float, rng: np.random.Generator) -> UnitImages:
    angle = radians * _signs(rng, len(x))
    cos, sin = torch.cos(angle), torch.sin(angle)
    return _linear(x, torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1))


def _translate(x: UnitImages, pixels: float, scale: float, rng: np.random.Generator) -> UnitImages:
    shift = pixels * scale * _signs(rng, len(x), 2)
    return warp(x, torch.eye(2).expand(len(x), 2, 2), -shift)


def _brightness(x: UnitImages, amount: float, _: float, __: np.random.Generator) -> UnitImages:
    return x + amount


def _contrast(x: UnitImages, factor: float, _: float, __: np.random.Generator) -> UnitImages:
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean) * factor + mean


def _displaced(total: np.ndarray, wibble: float, rng: np.random.Generator) -> np.ndarray:
    """The mean of four neighbours (``total / 4``) plus a uniform displacement of +- wibble^2."""
    return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)


def plasma_fractal(n: int, side: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` diamond-square height maps ``(n, side, side)`` in [0, 1] (``side`` a power of
    two); the random displacement shrinks by ``decay`` per halving, so larger is smoother."""
    if side < 2 or side & (side - 1):
        raise ValueError(f"plasma side must be a power of two >= 2, got {side}")
    maps = np.zeros((n, side, side))
    step, wibble = side, 100.0
    while step >= 2:
        half = step // 2
        corners = maps[:, ::step, ::step]
        square = corners + np.roll(corners, -1, axis=1)
        maps[:, half::step, half::step] = _displaced(square + np.roll(square, -1, axis=2), wibble, rng)
        centres = maps[:, half::step, half::step]
        maps[:, ::step, half::step] = _displaced(centres + np.roll(centres, 1, axis=1)
                                                 + corners + np.roll(corners, -1, axis=2), wibble, rng)
        maps[:, half::step, ::step] = _displaced(centres + np.roll(centres, 1, axis=2)
                                                 + corners + np.roll(corners, -1, axis=1), wibble, rng)
        step, wibble = half, wibble / decay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / np.maximum(maps.max(axis=(1, 2), keepdims=True), np.finfo(np.float64).tiny)


def _fog(x: UnitImages, level: tuple[float, float], _: float, rng: np.random.Generator) -> UnitImages:
    thickness, decay = level
    n, _, h, w = x.shape
    side = 1 << max(1, math.ceil(math.log2(FOG_MAP_FACTOR * max(h, w))))
    fog = torch.from_numpy(plasma_fractal(n, side, decay, rng)[:, None, :h, :w]).to(x.dtype)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x + thickness * fog) * peak / (peak + thickness)


def stripe_columns(width: int, count: int) -> list[int]:
    """The ``count`` columns stripe inverts (at most all), taken from the left and right edges
    inwards, alternately."""
    count = min(width, count)
    outside_in = [c for pair in zip(range(width), range(width - 1, -1, -1)) for c in pair]
    return list(dict.fromkeys(outside_in))[:count]


def _stripe(x: UnitImages, columns_at_28: int, scale: float, _: np.random.Generator) -> UnitImages:
    out = x.clone()
    columns = stripe_columns(x.shape[-1], max(1, round(columns_at_28 * scale)))
    out[..., columns] = 1.0 - x[..., columns]
    return out


CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in (
    Corruption("shot-noise", "Poisson noise: each pixel a Poisson count of its value x photons, divided back",
               "photons at full intensity", (60, 25, 12, 5, 3), _shot_noise),
    Corruption("impulse-noise", "salt-and-pepper: a fraction of the values set to 0 or 1 (half each)",
               "fraction of values", (0.03, 0.06, 0.09, 0.17, 0.27), _impulse_noise),
    Corruption("glass-blur", "Gaussian blur, local pixel swaps (each pixel, with chance 1/2, with one up to "
               "the reach away; a reach under 1 px swaps 1 px with chance reach / 2), blur again; levels made "
               "monotone in every parameter",
               "(sigma px, reach px, swap passes)", ((0.7, 1, 1), (0.9, 1, 2), (1.0, 2, 2), (1.1, 3, 2), (1.5, 4, 2)),
               _glass_blur),
    Corruption("motion-blur", "a one-sided Gaussian trail (ImageMagick's motion blur) in a direction uniform "
               f"in +-{MOTION_ANGLE:g} degrees per image", "(radius px, sigma px)",
               ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)), _motion_blur),
    Corruption("shear", "affine shear about the centre, x' = x - sin(a) y, y' = cos(a) y, the sign of a "
               "random per image", "a (radians)", (0.2, 0.4, 0.6, 0.8, 1.0), _shear),
    Corruption("scale", "zoom out about the centre by the factor (the digit shrinks)", "factor",
               (0.9, 0.8, 0.7, 0.6, 0.5), _scale),
    Corruption("rotate", "rotation about the centre, the direction random per image", "radians",
               (0.2, 0.4, 0.6, 0.8, 1.0), _rotate),
    Corruption("translate", "shift along both axes, each direction random per image, zero fill",
               "pixels per axis", (1, 2, 3, 4, 5), _translate),
    Corruption("brightness", "add to every value (the HSV value channel of a grey image)", "amount",
               (0.1, 0.2, 0.3, 0.4, 0.5), _brightness),
    Corruption("contrast", "scale each image's deviation from its mean (per channel)", "factor",
               (0.4, 0.3, 0.2, 0.1, 0.05), _contrast),
    Corruption("fog", "add thickness x a plasma fractal (diamond-square, a new one per image), rescale by "
               "max / (max + thickness)", "(thickness, roughness decay)",
               ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)), _fog),
    Corruption("stripe", "invert columns from the left and right edges inwards (MNIST-C inverts 7 + 7 of 28)",
               "columns", (2, 4, 8, 12, 14), _stripe),
)}


def corruption_rng(seed: int, name: str) -> np.random.Generator:
    """The random stream of one corruption for one seed: the same for every intensity (common
    random numbers: levels differ by their parameters, not by their draws)."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng([seed, SHIFT_STREAM, zlib.crc32(name.encode())])


def _unit_range(bounds: tuple[float, float]) -> tuple[float, float]:
    low, high = bounds
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"corruptions need finite image bounds low < high, got {bounds}")
    return low, high - low


def corrupt(x: torch.Tensor, name: str, intensity: int, bounds: tuple[float, float], seed: int) -> torch.Tensor:
    """``(N, C, H, W)`` images within ``bounds`` under corruption ``name`` (a key of
    :data:`CORRUPTIONS`) at ``intensity`` 1..5: same shape, dtype and bounds; seeded."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; expected one of {sorted(CORRUPTIONS)}")
    if intensity not in INTENSITIES:
        raise ValueError(f"intensity must be one of {INTENSITIES}, got {intensity!r}")
    if x.ndim != 4:
        raise ValueError(f"corrupt expects (N, C, H, W) images, got shape {tuple(x.shape)}")
    low, span = _unit_range(bounds)
    corruption = CORRUPTIONS[name]
    unit = ((x.detach().cpu() - low) / span).clamp(0.0, 1.0)
    out = corruption.apply(unit, corruption.levels[intensity - 1], x.shape[-1] / REFERENCE_SIDE,
                           corruption_rng(seed, name))
    return (out.clamp(0.0, 1.0) * span + low).clamp(*bounds).to(dtype=x.dtype, device=x.device)


def corrupted_test_sets(info: DatasetInfo, test: Split, seed: int, names: Sequence[str] | None = None,
                        intensities: Sequence[int] = INTENSITIES) -> Iterator[tuple[str, int, Split]]:
    """(corruption, intensity, corrupted copy of ``test`` with its labels), lazily, for every
    corruption in ``names`` (default: all of :data:`CORRUPTIONS`) and intensity."""
    for name in CORRUPTIONS if names is None else names:
        for intensity in intensities:
            yield name, intensity, Split(corrupt(test.x, name, intensity, info.bounds, seed), test.y.clone())


def translation_series(width: int) -> tuple[int, ...]:
    """Ovadia's translated-MNIST shifts for images ``width`` wide: 0, 2, ..., 26 at 28 pixels,
    the step scaled to the width (at least one pixel)."""
    step = max(1, round(TRANSLATION_STEP * width / REFERENCE_SIDE))
    return tuple(range(0, width, step))


def roll_images(x: torch.Tensor, pixels: int) -> torch.Tensor:
    """``(N, C, H, W)`` images shifted ``pixels`` to the right with wraparound (Ovadia et al.
    2019's translated MNIST, ``tf.roll`` along the width)."""
    if x.ndim != 4:
        raise ValueError(f"roll_images expects (N, C, H, W) images, got shape {tuple(x.shape)}")
    return torch.roll(x, shifts=pixels, dims=-1)


def rotation_sets(info: DatasetInfo, test: Split) -> Iterator[tuple[int, Split]]:
    """(degrees, ``test`` rotated counter-clockwise by them) for Ovadia's 0..180 in steps of 15."""
    for degrees in ROTATION_SERIES:
        yield degrees, Split(rotate_images(test.x, degrees, info.bounds), test.y.clone())


def translation_sets(test: Split) -> Iterator[tuple[int, Split]]:
    """(pixels, ``test`` rolled right by them) for :func:`translation_series` of its width."""
    for pixels in translation_series(test.x.shape[-1]):
        yield pixels, Split(roll_images(test.x, pixels), test.y.clone())


def _level_text(level: Any) -> str:
    if isinstance(level, tuple):
        return "(" + ", ".join(_level_text(v) for v in level) + ")"
    return f"{level:.3g}" if isinstance(level, float) else str(level)


def corruption_table() -> str:
    """:data:`CORRUPTIONS` as the Markdown table of ``docs/shift.md``."""
    head = ["corruption", "what it does", "parameters", *(f"level {i}" for i in INTENSITIES)]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in CORRUPTIONS.values():
        rows.append("| " + " | ".join([f"`{c.name}`", c.description, c.parameters,
                                       *(_level_text(level) for level in c.levels)]) + " |")
    return "\n".join(rows) + "\n"
