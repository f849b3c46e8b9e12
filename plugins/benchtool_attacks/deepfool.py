"""DeepFool: the minimal L2 step across the nearest linearized decision boundary."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from benchtool import hookimpl
from benchtool.contracts.attack import Norm, perturbation_norms
from benchtool_attacks._common import TINY, MinimumNormAttack, per_example


class DeepFool(MinimumNormAttack):
    """DeepFool, L2 (Moosavi-Dezfooli, Fawzi & Frossard, CVPR 2016, "DeepFool: a simple and
    accurate method to fool deep neural networks"): linearize the classifier around the
    current point, step to the nearest boundary among the ``candidates`` most likely
    classes, repeat until the label changes; the total step is scaled by 1 + ``overshoot``.

    A minimum-norm attack: it searches once per sweep and the harness's eps ball is applied
    by projecting the perturbation found. Hyper-parameters: ``overshoot=0.02`` (the paper),
    ``steps=50`` and ``candidates=10`` (foolbox 3's defaults; the paper uses the top 10
    classes on ImageNet). Untargeted only.
    """

    name: ClassVar[str] = "deepfool"
    norm: ClassVar[Norm] = "l2"
    defaults: ClassVar[dict[str, Any]] = {"steps": 50, "candidates": 10, "overshoot": 0.02}

    def __init__(self, **hyperparams: Any) -> None:
        super().__init__(**hyperparams)
        p = self.params
        if not isinstance(p["steps"], int) or p["steps"] < 0:
            raise ValueError(f"attack 'deepfool': steps must be an int >= 0, got {p['steps']!r}")
        if not isinstance(p["candidates"], int) or p["candidates"] < 2:
            raise ValueError(f"attack 'deepfool': candidates must be an int >= 2, got {p['candidates']!r}")
        if not p["overshoot"] >= 0:
            raise ValueError(f"attack 'deepfool': overshoot must be >= 0, got {p['overshoot']!r}")

    def minimal(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bounds: tuple[float, float],
        targeted: bool = False,
    ) -> torch.Tensor:
        """The DeepFool point of every example (``x`` itself where the label never changes);
        untargeted only, so ``targeted`` is always False here."""
        with torch.no_grad():
            logits = model(x)
        k = min(self.params["candidates"], logits.shape[1])
        classes = logits.argsort(dim=1, descending=True)[:, :k]  # classes[:, 0]: the predicted class
        x_adv, total = x.clone(), torch.zeros_like(x)
        active = torch.nonzero(logits.argmax(1) == y).flatten()  # misclassified points are done
        scale = 1.0 + self.params["overshoot"]
        for _ in range(self.params["steps"]):
            if len(active) == 0:
                break
            x_req = x_adv[active].requires_grad_(True)
            out = model(x_req)
            still = out.argmax(1) == y[active]
            active = active[still]
            if len(active) == 0:
                break
            rows = torch.nonzero(still).flatten()
            cls = classes[active]
            original = out[rows, cls[:, 0]]
            best_dist = torch.full((len(active),), float("inf"), device=x.device, dtype=x.dtype)
            best_step = torch.zeros_like(x[active])
            for j in range(1, k):
                gap = out[rows, cls[:, j]] - original  # < 0 while the label holds
                (w,) = torch.autograd.grad(gap.sum(), x_req, retain_graph=j < k - 1)
                w = w[rows]
                w_norm = perturbation_norms(w, "l2") + TINY
                dist = (gap.detach().abs() + 1e-4) / w_norm
                closer = dist < best_dist
                best_dist = torch.where(closer, dist, best_dist)
                step = per_example(dist / w_norm, w) * w
                best_step = torch.where(per_example(closer, w), step, best_step)
            total[active] += best_step
            x_adv[active] = torch.clamp(x[active] + scale * total[active], *bounds)
        return x_adv


@hookimpl
def benchtool_register_attacks(registry) -> None:
    registry.add(DeepFool)
