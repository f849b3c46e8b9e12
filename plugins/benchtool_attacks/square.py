"""Square Attack: score-based black-box random search in the Linf ball."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from benchtool import hookimpl
from benchtool.contracts.attack import Attack, Norm
from benchtool_attacks._common import logit_margin

# The paper's piecewise-constant schedule of p: (iteration on a 10000-query scale, divisor).
P_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128), (8000, 256),
              (10000, 512))


def square_fraction(p_init: float, iteration: int, queries: int) -> float:
    """The fraction p of pixels a square covers at ``iteration`` (halved on the paper's schedule)."""
    it = int(iteration / queries * 10000)
    for threshold, divisor in P_SCHEDULE:
        if it <= threshold:
            return p_init / divisor
    return p_init


class SquareAttack(Attack):
    """Square Attack, Linf (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020, "Square
    Attack: a query-efficient black-box adversarial attack via random search"): from
    vertical stripes of +-eps, repeatedly set a random square window to a random +-eps per
    channel and keep it if the margin loss falls. Uses scores only, no gradients; every
    forward pass is a counted query and fooled examples stop querying.

    Hyper-parameters (the paper): ``queries=10000`` per example, ``p_init=0.05`` (the
    fraction of pixels of the first squares; the paper uses 0.8 on the MNIST challenge).
    Budget ``small`` (a smoke test) uses 200 queries, ``default`` 5000.
    """

    name: ClassVar[str] = "square"
    norm: ClassVar[Norm] = "linf"
    needs_gradients: ClassVar[bool] = False
    supports_targeted: ClassVar[bool] = True
    defaults: ClassVar[dict[str, Any]] = {"queries": 10000, "p_init": 0.05}
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = {"small": {"queries": 200}, "default": {"queries": 5000}}

    def __init__(self, **hyperparams: Any) -> None:
        super().__init__(**hyperparams)
        queries, p_init = self.params["queries"], self.params["p_init"]
        if not isinstance(queries, int) or queries < 1:
            raise ValueError(f"attack 'square': queries must be an int >= 1, got {queries!r}")
        if not 0 < p_init <= 1:
            raise ValueError(f"attack 'square': p_init must lie in (0, 1], got {p_init!r}")

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        x = x.detach()
        if eps == 0 or len(x) == 0:
            return x.clone()
        images = x.reshape(len(x), -1, *x.shape[-2:]) if x.ndim >= 3 else x.reshape(len(x), 1, 1, -1)
        n, c, h, w = images.shape
        device, dtype = x.device, x.dtype

        def signs(*shape: int) -> torch.Tensor:
            return torch.randint(0, 2, shape, generator=generator, device=device).to(dtype) * 2 - 1

        best = torch.clamp(images + eps * signs(n, c, 1, w), *bounds)  # vertical stripes
        loss = logit_margin(model(best.reshape(x.shape)), y, targeted)
        queries = self.params["queries"]
        rows, cols = torch.arange(h, device=device), torch.arange(w, device=device)
        for iteration in range(queries - 1):
            active = torch.nonzero(loss > 0).flatten()
            if len(active) == 0:
                break
            m = len(active)
            p = square_fraction(self.params["p_init"], iteration, queries)
            side = min(max(int(round(math.sqrt(p * h * w))), 1), min(h, w))
            top = torch.randint(0, h - side + 1, (m,), generator=generator, device=device)
            left = torch.randint(0, w - side + 1, (m,), generator=generator, device=device)
            window = (((rows >= top[:, None]) & (rows < top[:, None] + side))[:, None, :, None]
                      & ((cols >= left[:, None]) & (cols < left[:, None] + side))[:, None, None, :])
            current, origin = best[active], images[active]
            value = eps * signs(m, c, 1, 1)
            candidate = torch.clamp(torch.where(window, origin + value, current), *bounds)
            unchanged = ~(candidate != current).flatten(1).any(1)
            if unchanged.any():  # the paper redraws until the square changes: the opposite sign does
                flipped = torch.clamp(torch.where(window, origin - value, current), *bounds)
                candidate = torch.where(unchanged[:, None, None, None], flipped, candidate)
            new_loss = logit_margin(model(candidate.reshape(m, *x.shape[1:])), y[active], targeted)
            better = new_loss < loss[active]
            best[active] = torch.where(better[:, None, None, None], candidate, current)
            loss[active] = torch.where(better, new_loss, loss[active])
        return best.reshape(x.shape)


@hookimpl
def benchtool_register_attacks(registry) -> None:
    registry.add(SquareAttack)
