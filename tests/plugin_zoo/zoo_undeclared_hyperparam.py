"""An attack that reads a hyper-parameter it never declares (``steps``): its cells fail
naming the plugin and what it declares; every other cell's records are unchanged."""

from __future__ import annotations

from benchtool import hookimpl
from benchtool.contracts.attack import Attack


class ForgotSteps(Attack):
    """Would iterate ``steps`` times, but only declares ``step_size``."""

    name = "forgot-steps"
    norm = "linf"
    needs_gradients = False
    defaults = {"step_size": 0.01}

    def perturb(self, model, x, y, eps, *, bounds, generator, targeted=False):
        for _ in range(self.params["steps"]):
            x = x + 0
        return x.clone()


@hookimpl
def benchtool_register_attacks(registry):
    registry.add(ForgotSteps)
