"""Single-hidden-layer networks of growing width fitted to a target function, with their
errors inside and outside the training box (Hornik, Stinchcombe & White 1989, "Multilayer
feedforward networks are universal approximators").

Every width is trained at once, side by side in one layer: the objective is the sum of the
widths' own mean squared errors, so each width receives exactly its own gradient, and
Adam's update is elementwise, so each trains exactly as it would alone. After training,
each width's output layer is solved exactly by least squares (a convex problem), so what
is measured is the hidden layer's power, not the last steps of the optimizer.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from benchtool.config import check_budget
from benchtool.contracts.limits import TargetFunction
from benchtool.errors import ContractViolation

Box = tuple[tuple[float, float], ...]  # one (low, high) per input dimension
WIDTHS: tuple[int, ...] = tuple(2**k for k in range(10))  # 1, 2, 4, ..., 512 hidden units
OUTSIDE_MARGIN = 0.5  # the outside band widens the box by half its side on each end
GRID_POINTS_PER_AXIS = {1: 2001, 2: 101}  # dense evaluation grid: 2001 points in 1-D, 101^2 in 2-D, 41^d beyond
HIGH_DIMENSION_POINTS = 41
TOLERANCE = 0.05  # "width needed": max error inside <= 5% of the target's range on the box


@dataclass(frozen=True)
class ApproximationRecipe:
    """Full-batch Adam with a cosine learning-rate decay on points drawn uniformly in the
    box, then each width's output layer solved exactly by least squares (``refit``)."""

    steps: int
    lr: float = 1e-2
    train_points: tuple[int, ...] = (512, 2048)  # in 1-D, in 2-D (and beyond)
    refit: bool = True


def approximation_recipe(budget: str) -> ApproximationRecipe:
    """The documented recipe per budget: small (a smoke test) 100 steps on 256 / 512 points,
    default 1500 and full 6000 steps on 512 / 2048 points (1-D / 2-D and beyond)."""
    if check_budget(budget) == "small":
        return ApproximationRecipe(steps=100, train_points=(256, 512))
    return ApproximationRecipe(steps={"default": 1500, "full": 6000}[budget])


def check_domain(target: TargetFunction) -> Box:
    """The target's box, validated: at least one dimension, each ``low < high``, finite."""
    try:
        domain = tuple(tuple(float(v) for v in bounds) for bounds in target.domain)
    except (TypeError, ValueError):
        domain = ()
    if not domain or any(len(b) != 2 or not (math.isfinite(b[0]) and math.isfinite(b[1]) and b[0] < b[1])
                         for b in domain):
        raise ContractViolation(target.name, "domain-valid",
                                f"domain must be ((low, high), ...) with finite low < high, got {target.domain!r}")
    return domain  # type: ignore[return-value]


def expanded(domain: Box, margin: float = OUTSIDE_MARGIN) -> Box:
    """The box widened by ``margin`` times its side on each end."""
    return tuple((low - margin * (high - low), high + margin * (high - low)) for low, high in domain)


def dense_grid(box: Box, points_per_axis: int) -> torch.Tensor:
    """Every point of a regular grid over ``box``, shape ``(points_per_axis ** dim, dim)``."""
    axes = [torch.linspace(low, high, points_per_axis) for low, high in box]
    return torch.stack([g.reshape(-1) for g in torch.meshgrid(*axes, indexing="ij")], dim=1)


def inside(points: torch.Tensor, domain: Box) -> torch.Tensor:
    """Which rows of ``points`` lie in the closed box ``domain``."""
    low = torch.tensor([b[0] for b in domain], dtype=points.dtype, device=points.device)
    high = torch.tensor([b[1] for b in domain], dtype=points.dtype, device=points.device)
    return ((points >= low) & (points <= high)).all(dim=1)


def evaluation_sets(domain: Box) -> tuple[torch.Tensor, torch.Tensor]:
    """(inside, outside): a dense grid over the box, and the points of the same grid
    continued over the expanded box that fall outside the box (decided by grid index, so
    no point on the box's edge is lost to rounding)."""
    n = GRID_POINTS_PER_AXIS.get(len(domain), HIGH_DIMENSION_POINTS)
    extra = round((n - 1) * OUTSIDE_MARGIN)  # grid steps added on each end
    wide_n = n + 2 * extra
    wide = dense_grid(expanded(domain, extra / (n - 1)), wide_n)
    index = torch.stack([g.reshape(-1) for g in torch.meshgrid(*[torch.arange(wide_n)] * len(domain), indexing="ij")],
                        dim=1)
    within = ((index >= extra) & (index < extra + n)).all(dim=1)
    return dense_grid(domain, n), wide[~within]


class ShallowNetworks(nn.Module):
    """Every width's tanh hidden layer side by side in one layer of sum(widths) units; an
    output weight only ever reaches the output of its own width.

    Hidden unit i computes tanh(a_i . (x - c_i)): its centre c_i is drawn uniformly in the
    box and its slope log-uniformly so that it switches over 1/100 to all of the box. Every
    unit's bend starts inside the data, at scales from smooth to sharp (a domain-scaled
    version of the default init; sharp units are what kinks need).
    """

    def __init__(self, widths: tuple[int, ...], domain: Box,
                 generator: torch.Generator) -> None:
        super().__init__()
        units, d = sum(widths), len(domain)
        low = torch.tensor([b[0] for b in domain])
        side = torch.tensor([b[1] - b[0] for b in domain])
        centres = low + side * torch.rand(units, d, generator=generator)
        direction = torch.randn(units, d, generator=generator)
        direction = direction / direction.norm(dim=1, keepdim=True)
        slope = 2.0 / side.mean() * 10.0 ** (2.0 * torch.rand(units, 1, generator=generator))
        weight = direction * slope
        owner = torch.repeat_interleave(torch.arange(len(widths)), torch.tensor(widths))
        fan_in = torch.tensor(widths, dtype=torch.float32)[owner]
        self.hidden_weight = nn.Parameter(weight.T.contiguous())  # (d, units)
        self.hidden_bias = nn.Parameter(-(weight * centres).sum(dim=1))  # (units,)
        self.out_weight = nn.Parameter(torch.randn(units, generator=generator) / fan_in.sqrt())
        self.out_bias = nn.Parameter(torch.zeros(len(widths)))
        self.register_buffer("owner", owner)
        self.register_buffer("membership", nn.functional.one_hot(owner, len(widths)).float())  # (units, k)
        self.widths = widths

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Every hidden unit's activation for ``x[N, d]``, shape ``(N, units)``."""
        return torch.tanh(x @ self.hidden_weight + self.hidden_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions of every width for ``x[N, d]``, shape ``(k, N)``."""
        return (self.features(x) @ (self.out_weight[:, None] * self.membership) + self.out_bias).T

    @torch.no_grad()
    def refit_output_layer(self, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-6) -> None:
        """Solve each width's output weights and bias by ridge-regularized least squares on
        (x, y): the exact optimum of the convex last-layer problem, in float64."""
        hidden = self.features(x).double()
        ones = torch.ones(len(x), 1, dtype=hidden.dtype, device=hidden.device)
        for k in range(len(self.widths)):
            cols = (self.owner == k).nonzero().squeeze(1)
            design = torch.cat([hidden[:, cols], ones], dim=1)
            gram = design.T @ design + ridge * len(x) * torch.eye(design.shape[1], dtype=design.dtype,
                                                                   device=design.device)
            solution = torch.linalg.solve(gram, design.T @ y.double())
            self.out_weight[cols] = solution[:-1].to(self.out_weight.dtype)
            self.out_bias[k] = solution[-1].to(self.out_bias.dtype)


@dataclass
class WidthFit:
    """Errors of one width's fit: absolute errors |net(x) - f(x)| on the dense grids."""

    width: int
    train_rmse: float
    inside_max: float
    inside_rms: float
    outside_max: float
    outside_rms: float


@dataclass
class ApproximationResult:
    target: str
    widths: tuple[int, ...]
    fits: list[WidthFit]
    target_range: float  # max - min of f on the inside grid
    loss_steps: list[int] = field(default_factory=list)
    loss_curves: dict[int, list[float]] = field(default_factory=dict)  # width -> training MSE per logged step
    seconds: float = 0.0

    def width_needed(self, tolerance: float = TOLERANCE) -> float:
        """The smallest width whose max error inside is within ``tolerance`` of the target's
        range; ``inf`` when no width of the grid reaches it."""
        for fit in self.fits:
            if fit.inside_max <= tolerance * self.target_range:
                return float(fit.width)
        return math.inf


def fit_widths(
    target: TargetFunction,
    recipe: ApproximationRecipe,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    widths: tuple[int, ...] = WIDTHS,
    log_points: int = 40,
) -> ApproximationResult:
    """Train a shallow tanh network of each width on ``target`` over its domain."""
    start = time.perf_counter()
    device = torch.device(device)
    domain = check_domain(target)
    generator = torch.Generator().manual_seed(seed)
    low = torch.tensor([b[0] for b in domain])
    side = torch.tensor([b[1] - b[0] for b in domain])
    n_train = recipe.train_points[min(len(domain), len(recipe.train_points)) - 1]
    x_train = (low + side * torch.rand(n_train, len(domain), generator=generator)).to(device)
    y_train = target(x_train)
    nets = ShallowNetworks(widths, domain, generator).to(device)
    optimizer = torch.optim.Adam(nets.parameters(), lr=recipe.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.steps)
    every = max(1, recipe.steps // log_points)
    steps: list[int] = []
    curves: dict[int, list[float]] = {w: [] for w in widths}
    for step in range(recipe.steps):
        per_width = (nets(x_train) - y_train[None, :]).pow(2).mean(dim=1)
        optimizer.zero_grad(set_to_none=True)
        per_width.sum().backward()
        optimizer.step()
        schedule.step()
        if step % every == 0 or step == recipe.steps - 1:
            steps.append(step + 1)
            for w, value in zip(widths, per_width.detach().cpu().tolist()):
                curves[w].append(value)
    if recipe.refit:
        nets.refit_output_layer(x_train, y_train)
    grid_in, grid_out = (g.to(device) for g in evaluation_sets(domain))
    with torch.no_grad():
        train_rmse = (nets(x_train) - y_train[None, :]).pow(2).mean(dim=1).sqrt().cpu()
        f_in, f_out = target(grid_in), target(grid_out)
        err_in = (nets(grid_in) - f_in[None, :]).abs().cpu()
        err_out = (nets(grid_out) - f_out[None, :]).abs().cpu()
    fits = [
        WidthFit(w, float(train_rmse[i]), float(err_in[i].max()), float(err_in[i].pow(2).mean().sqrt()),
                 float(err_out[i].max()), float(err_out[i].pow(2).mean().sqrt()))
        for i, w in enumerate(widths)
    ]
    return ApproximationResult(
        target=target.name, widths=widths, fits=fits, target_range=float(f_in.max() - f_in.min()),
        loss_steps=steps, loss_curves=curves, seconds=time.perf_counter() - start,
    )
