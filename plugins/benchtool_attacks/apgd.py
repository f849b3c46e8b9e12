"""Auto-PGD (APGD): PGD with momentum and a step size that halves on a fixed checkpoint
schedule, on the cross-entropy or the DLR loss, in the Linf and L2 balls.

After Croce & Hein, ICML 2020, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks" (arXiv:2003.01690), Algorithm 1 and Sec. 3-4;
the schedule checked against the authors' code (github.com/fra31/auto-attack,
``autoattack/autopgd_base.py``). One base class, :class:`APGD`, parametrized by ``norm``
and ``loss``; the six registered attacks only set those.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from benchtool import hookimpl
from benchtool.contracts.attack import Attack, Norm
from benchtool_attacks._common import (
    l2_normalized, per_example, project_l2, project_linf, top_other_logit,
)

Loss = Literal["ce", "dlr", "dlr-targeted"]

MOMENTUM = 0.75  # alpha of Algorithm 1 (the first step takes no momentum: alpha = 1)
INITIAL_STEP = 2.0  # eta^(0) = 2 * eps
DLR_TINY = 1e-12  # the DLR denominator's guard, as in the paper
# The checkpoint fractions in hundredths: p_0 = 0, p_1 = 0.22,
# p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06); integers so 0.22 + 0.19 is exactly 0.41.
FIRST_CHECKPOINT, SHRINK, MIN_INTERVAL = 22, 3, 6
MIN_CLASSES: dict[str, int] = {"ce": 2, "dlr": 3, "dlr-targeted": 4}


def checkpoints(steps: int) -> list[int]:
    """The iterations w_j = ceil(p_j * steps) at which APGD may halve its step (w_0 = 0 left
    out): for 100 steps 22, 41, 57, 70, 80, 87, 93, 99."""
    found, previous, current = [], 0, FIRST_CHECKPOINT
    while current <= 100:
        found.append(-(-current * steps // 100))
        previous, current = current, current + max(current - previous - SHRINK, MIN_INTERVAL)
    return sorted({w for w in found if 0 < w <= steps})


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example Difference of Logits Ratio, -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3),
    with pi the logits sorted in decreasing order: invariant to shifting and scaling the logits."""
    ranked = logits.sort(dim=1, descending=True).values
    margin = logits.gather(1, y[:, None]).squeeze(1) - top_other_logit(logits, y)
    return -margin / (ranked[:, 0] - ranked[:, 2] + DLR_TINY)


def targeted_dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example targeted DLR, -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)."""
    ranked = logits.sort(dim=1, descending=True).values
    margin = logits.gather(1, y[:, None]).squeeze(1) - logits.gather(1, target[:, None]).squeeze(1)
    return -margin / (ranked[:, 0] - (ranked[:, 2] + ranked[:, 3]) / 2 + DLR_TINY)


class APGD(Attack):
    """Auto-PGD (Croce & Hein, ICML 2020, "Reliable evaluation of adversarial robustness with
    an ensemble of diverse parameter-free attacks"): gradient ascent with momentum 0.75 from
    a random point on the sphere of radius eps, first step 2 * eps, the step halved at
    checkpoints w_j = ceil(p_j * steps) (p_0 = 0, p_1 = 0.22, p_{j+1} = p_j +
    max(p_j - p_{j-1} - 0.03, 0.06)) when fewer than ``rho`` of the steps since the last
    checkpoint raised the loss, or when neither the step size nor the best loss changed
    since it; a halving restarts from the best point seen. An example stops as soon as it is
    misclassified; ``restarts`` random restarts attack the examples still robust.

    Hyper-parameters (the paper's): ``steps=100``, ``restarts=1``, ``rho=0.75``. Budget
    ``small`` uses 20 steps (torchattacks defaults to 10 steps, its issue #196). Where the
    paper and the authors' code differ this follows the paper: condition 1 is a strict
    ``<``, its first comparison is against the loss at the start point, a restart compares the
    next loss against the best loss, and condition 2 is checked at the first checkpoint too.
    Examples already misclassified are returned unchanged; robust ones get the best-loss
    point of their last run.
    """

    loss: ClassVar[Loss]
    defaults: ClassVar[dict[str, Any]] = {"steps": 100, "restarts": 1, "rho": 0.75}
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = {"small": {"steps": 20}}

    def __init__(self, **hyperparams: Any) -> None:
        super().__init__(**hyperparams)
        p = self.params
        for key in ("steps", "restarts") + (("targets",) if "targets" in self.defaults else ()):
            if not isinstance(p[key], int) or isinstance(p[key], bool) or p[key] < 1:
                raise ValueError(f"attack {self.name!r}: {key} must be an int >= 1, got {p[key]!r}")
        if not 0 < p["rho"] <= 1:
            raise ValueError(f"attack {self.name!r}: rho must lie in (0, 1], got {p['rho']!r}")

    # --- the pieces a variant changes -------------------------------------------------

    def targets(self, logits: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor | None]:
        """The target classes of each run over the batch: one untargeted run (None)."""
        return [None]

    def objective(self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """The per-example loss APGD ascends."""
        if self.loss == "ce":
            return F.cross_entropy(logits, y, reduction="none")
        if self.loss == "dlr":
            return dlr_loss(logits, y)
        return targeted_dlr_loss(logits, y, target)

    # --- the algorithm ------------------------------------------------------------------

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        x = x.detach()
        x_adv = x.clone()
        if eps == 0 or len(x) == 0:
            return x_adv
        with torch.no_grad():
            logits = model(x)
        classes, needed = logits.shape[1], MIN_CLASSES[self.loss]
        if classes < needed:
            raise ValueError(f"attack {self.name!r}: the {self.loss} loss needs a model with at least {needed} "
                             f"classes, this one has {classes}; use apgd-ce{'-l2' if self.norm == 'l2' else ''}")
        robust = logits.argmax(1) == y  # only correctly classified examples are attacked
        for target in self.targets(logits, y):
            for _ in range(self.params["restarts"]):
                index = robust.nonzero().flatten()
                if len(index) == 0:
                    return x_adv
                found, fooled = self.single_run(
                    model, x[index], y[index], None if target is None else target[index], eps, bounds, generator)
                x_adv[index] = found
                robust[index[fooled]] = False
        return x_adv

    def loss_and_gradient(
        self, model: torch.nn.Module, x_adv: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-example loss, its input gradient, and whether each point is misclassified."""
        x_req = x_adv.detach().requires_grad_(True)
        logits = model(x_req)
        loss = self.objective(logits, y, target)
        (grad,) = torch.autograd.grad(loss.sum(), x_req)
        return loss.detach(), grad.detach(), logits.detach().argmax(1) != y

    def random_start(self, x: torch.Tensor, eps: float, bounds: tuple[float, float],
                     generator: torch.Generator) -> torch.Tensor:
        """A random point at distance eps (before clipping to the data bounds): uniform noise
        scaled to Linf norm eps, or a Gaussian direction scaled to L2 norm eps (the authors' code)."""
        if self.norm == "linf":
            noise = 2 * torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) - 1
            scale = noise.reshape(len(x), -1).abs().amax(dim=1) + DLR_TINY
            return project_linf(x + eps * noise / per_example(scale, x), x, eps, bounds)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return project_l2(x + eps * l2_normalized(noise), x, eps, bounds)

    def single_run(
        self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, eps: float,
        bounds: tuple[float, float], generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One run of Algorithm 1 from a random start: (per example, the first misclassified
        point found or else the best-loss point; whether it was misclassified)."""
        linf = self.norm == "linf"
        project = project_linf if linf else project_l2
        steps, rho = self.params["steps"], self.params["rho"]
        marks = set(checkpoints(steps))
        out, fooled = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)

        # Per-example state of the examples still running; rows leave once misclassified.
        active = torch.arange(len(x), device=x.device)
        x_adv = self.random_start(x, eps, bounds, generator)
        loss, grad, wrong = self.loss_and_gradient(model, x_adv, y, target)
        state = {
            "x": x, "y": y, "x_adv": x_adv, "x_prev": x_adv, "grad": grad, "loss": loss,
            "x_best": x_adv, "grad_best": grad, "loss_best": loss, "loss_best_at_check": loss,
            "step": torch.full((len(x),), INITIAL_STEP * eps, dtype=x.dtype, device=x.device),
            "increases": torch.zeros(len(x), dtype=torch.long, device=x.device),
            "halved_at_check": torch.zeros(len(x), dtype=torch.bool, device=x.device),
        }
        if target is not None:
            state["target"] = target

        def drop_misclassified(wrong: torch.Tensor) -> bool:
            """Record the misclassified current points and drop their rows; False once none is left."""
            nonlocal active
            if wrong.any():
                out[active[wrong]] = state["x_adv"][wrong]
                fooled[active[wrong]] = True
                active = active[~wrong]
                for key, value in state.items():
                    state[key] = value[~wrong]
            return len(active) > 0

        last_mark = 0
        for k in range(steps):  # iteration k computes x^(k+1) from x^(k) and x^(k-1)
            if not drop_misclassified(wrong):
                return out, fooled
            s = state
            x_now, x0 = s["x_adv"], s["x"]
            step = per_example(s["step"], x_now)
            direction = s["grad"].sign() if linf else l2_normalized(s["grad"])
            z = project(x_now + step * direction, x0, eps, bounds)
            alpha = 1.0 if k == 0 else MOMENTUM
            x_next = project(x_now + alpha * (z - x_now) + (1 - alpha) * (x_now - s["x_prev"]), x0, eps, bounds)
            loss, grad, wrong = self.loss_and_gradient(model, x_next, s["y"], s.get("target"))
            s["increases"] = s["increases"] + (loss > s["loss"]).long()
            s["x_prev"], s["x_adv"], s["grad"], s["loss"] = x_now, x_next, grad, loss
            better = loss > s["loss_best"]
            s["x_best"] = torch.where(per_example(better, x_next), x_next, s["x_best"])
            s["grad_best"] = torch.where(per_example(better, grad), grad, s["grad_best"])
            s["loss_best"] = torch.where(better, loss, s["loss_best"])
            if k + 1 in marks:
                too_few_increases = s["increases"] < rho * (k + 1 - last_mark)
                stalled = ~s["halved_at_check"] & (s["loss_best"] <= s["loss_best_at_check"])
                halve = too_few_increases | stalled
                # A misclassified x^(k+1) is recorded (next loop turn) before a halving replaces it.
                restart = halve & ~wrong
                s["step"] = torch.where(halve, s["step"] / 2, s["step"])
                s["x_adv"] = torch.where(per_example(restart, x_next), s["x_best"], x_next)
                s["grad"] = torch.where(per_example(restart, grad), s["grad_best"], grad)
                s["loss"] = torch.where(restart, s["loss_best"], loss)
                s["halved_at_check"], s["loss_best_at_check"] = halve, s["loss_best"]
                s["increases"] = torch.zeros_like(s["increases"])
                last_mark = k + 1
        drop_misclassified(wrong)
        out[active] = state["x_best"]
        return out, fooled


class APGDTargeted(APGD):
    """APGD-T (Croce & Hein, ICML 2020): APGD on the targeted DLR loss
    -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2), run once per target class t among the
    ``targets`` classes with the highest clean logits other than the true one, on the
    examples still robust: an untargeted attack (any misclassification counts) that needs
    at least 4 classes.

    Hyper-parameters (the paper's AutoAttack): ``targets=9`` (capped at classes - 1),
    ``steps=100`` per target, ``restarts=1`` per target, ``rho=0.75``. Budget ``small``
    uses 3 targets x 20 steps. Schedule, restarts and early stop as :class:`APGD`.
    """

    loss: ClassVar[Loss] = "dlr-targeted"
    defaults: ClassVar[dict[str, Any]] = {**APGD.defaults, "targets": 9}
    budget_overrides: ClassVar[dict[str, dict[str, Any]]] = {"small": {"steps": 20, "targets": 3}}

    def targets(self, logits: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor | None]:
        """The 1st, 2nd, ... most likely other class of each example, by its clean logits."""
        others = logits.scatter(1, y[:, None], float("-inf")).argsort(dim=1, descending=True)
        return list(others[:, : min(self.params["targets"], logits.shape[1] - 1)].T)


PAPER = ('Croce & Hein, ICML 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse '
         'parameter-free attacks"')


def _doc(summary: str, base: type[APGD]) -> str:
    """A registered variant's docstring: its one-line summary (what ``benchtool list`` shows),
    then the shared description."""
    return f"{summary}\n\n{inspect.cleandoc(base.__doc__ or '')}"


class APGDCE(APGD):
    __doc__ = _doc(f"APGD-CE, Linf ({PAPER}): Auto-PGD on the cross-entropy.", APGD)
    name: ClassVar[str] = "apgd-ce"
    norm: ClassVar[Norm] = "linf"
    loss: ClassVar[Loss] = "ce"


class APGDDLR(APGD):
    __doc__ = _doc(f"APGD-DLR, Linf ({PAPER}): Auto-PGD on the DLR loss -(z_y - max_{{i!=y}} z_i) / "
                   "(z_pi1 - z_pi3), invariant to the scale of the logits (needs 3 classes).", APGD)
    name: ClassVar[str] = "apgd-dlr"
    norm: ClassVar[Norm] = "linf"
    loss: ClassVar[Loss] = "dlr"


class APGDT(APGDTargeted):
    __doc__ = _doc(f"APGD-T, Linf ({PAPER}): Auto-PGD on the targeted DLR loss, once per target among the 9 "
                   "most likely other classes; untargeted overall (needs 4 classes).", APGDTargeted)
    name: ClassVar[str] = "apgd-t"
    norm: ClassVar[Norm] = "linf"


class APGDCEL2(APGDCE):
    __doc__ = _doc(f"APGD-CE, L2 ({PAPER}): Auto-PGD on the cross-entropy along the L2-normalized gradient.", APGD)
    name: ClassVar[str] = "apgd-ce-l2"
    norm: ClassVar[Norm] = "l2"


class APGDDLRL2(APGDDLR):
    __doc__ = _doc(f"APGD-DLR, L2 ({PAPER}): Auto-PGD on the DLR loss along the L2-normalized gradient "
                   "(needs 3 classes).", APGD)
    name: ClassVar[str] = "apgd-dlr-l2"
    norm: ClassVar[Norm] = "l2"


class APGDTL2(APGDT):
    __doc__ = _doc(f"APGD-T, L2 ({PAPER}): Auto-PGD on the targeted DLR loss along the L2-normalized gradient, "
                   "once per target among the 9 most likely other classes (needs 4 classes).", APGDTargeted)
    name: ClassVar[str] = "apgd-t-l2"
    norm: ClassVar[Norm] = "l2"


ATTACKS: tuple[type[APGD], ...] = (APGDCE, APGDDLR, APGDT, APGDCEL2, APGDDLRL2, APGDTL2)


@hookimpl
def benchtool_register_attacks(registry) -> None:
    for attack in ATTACKS:
        registry.add(attack)
