"""Pieces the built-in attacks share: losses, projections onto eps balls, random starts, and
the shape of a minimum-norm attack."""

from __future__ import annotations

from abc import abstractmethod

import torch
import torch.nn.functional as F

from benchtool.contracts.attack import Attack, Norm, perturbation_norms

TINY = 1e-12  # keeps a zero gradient or perturbation from dividing by zero
# Rows per model call on a CPU for attacks that multiply a batch by their draws (EOT): past about
# a thousand 28x28 images a lenet's activations outgrow the caches. One call of 10000 rows made
# eot-pgd 1.5x and eot 1.4x slower on lenet / Fashion-MNIST than calls of 1000 (same results).
CPU_ROWS_PER_CALL = 1000


def rows_per_call(x: torch.Tensor, rows: int) -> int:
    """How many of ``rows`` rows like ``x`` to send through a model at once: all of them on a
    GPU, which wants large batches, :data:`CPU_ROWS_PER_CALL` on a CPU."""
    return rows if x.device.type != "cpu" else max(1, min(rows, CPU_ROWS_PER_CALL))


def forward_in_chunks(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` in calls of :func:`rows_per_call` rows, concatenated (gradients flow through)."""
    rows = rows_per_call(x, len(x))
    return model(x) if rows >= len(x) else torch.cat([model(chunk) for chunk in x.split(rows)])


def attack_loss(logits: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Cross-entropy to ascend: the true class's (untargeted) or minus the target's (targeted)."""
    loss = F.cross_entropy(logits, y)
    return -loss if targeted else loss


def per_example(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-example vector reshaped to broadcast against a batch shaped like ``like``."""
    return values.reshape(-1, *([1] * (like.ndim - 1)))


def l2_normalized(grad: torch.Tensor) -> torch.Tensor:
    """Each example's gradient scaled to unit L2 norm (zero stays zero)."""
    return grad / per_example(perturbation_norms(grad, "l2") + TINY, grad)


def project_linf(x_adv: torch.Tensor, x: torch.Tensor, eps: float, bounds: tuple[float, float]) -> torch.Tensor:
    """Clip into the Linf ball of radius eps around x, then into the data bounds (Madry et al. 2018)."""
    delta = torch.clamp(x_adv - x, min=-eps, max=eps)
    return torch.clamp(x + delta, *bounds)


def project_l2(x_adv: torch.Tensor, x: torch.Tensor, eps: float, bounds: tuple[float, float]) -> torch.Tensor:
    """Scale into the L2 ball of radius eps around x, then clip into the data bounds.
    Clipping moves each coordinate towards x (which lies inside the bounds), so the norm
    can only shrink."""
    delta = x_adv - x
    factor = torch.clamp(eps / (perturbation_norms(delta, "l2") + TINY), max=1.0)
    return torch.clamp(x + delta * per_example(factor, delta), *bounds)


def restrict(x_found: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm, bounds: tuple[float, float]) -> torch.Tensor:
    """A minimum-norm attack's answer at a fixed eps: its perturbation projected onto the eps ball."""
    return (project_linf if norm == "linf" else project_l2)(x_found, x, eps, bounds)


def uniform_linf(x: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    """A uniform random point of the Linf ball around x (PGD's random start)."""
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + (2 * noise - 1) * eps


def uniform_l2(x: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    """A uniform random point of the L2 ball around x: a Gaussian direction and a radius
    eps * U^(1/d)."""
    direction = l2_normalized(torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype))
    dims = x[0].numel()
    radius = eps * torch.rand(len(x), generator=generator, device=x.device, dtype=x.dtype) ** (1.0 / dims)
    return x + direction * per_example(radius, x)


def top_other_logit(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """The largest logit among the classes other than ``label``, per example."""
    masked = logits.scatter(1, label[:, None], float("-inf"))
    return masked.amax(dim=1)


def logit_margin(logits: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """The margin to push below zero: the label's logit over the best other (untargeted), or
    the best other over the target's (targeted)."""
    label, other = logits.gather(1, y[:, None]).squeeze(1), top_other_logit(logits, y)
    return other - label if targeted else label - other


class MinimumNormAttack(Attack):
    """An attack that searches once for the smallest adversarial perturbation; each eps of a
    sweep gets that perturbation projected onto its ball (as foolbox 3 does)."""

    @abstractmethod
    def minimal(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bounds: tuple[float, float],
        targeted: bool = False,
    ) -> torch.Tensor:
        """The smallest adversarial example found per input (``x`` itself where none was)."""

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        return self.perturb_sweep(model, x, y, [eps], bounds=bounds, generator=generator, targeted=targeted)[0]

    def perturb_sweep(self, model, x, y, eps_list, *, bounds, generator, targeted=False):
        found = self.minimal(model, x.detach(), y, bounds, targeted)
        return [restrict(found, x, eps, self.norm, bounds) for eps in eps_list]
