"""Projected Gradient Descent in the L2 ball."""

from __future__ import annotations

from typing import Any, ClassVar

from benchtool import hookimpl
from benchtool.contracts.attack import Norm
from benchtool_attacks.pgd import PGD


class PGDL2(PGD):
    """PGD in the L2 ball (Madry et al., ICLR 2018): steps along the L2-normalized gradient,
    projection by rescaling, a random start uniform in the ball.

    Hyper-parameters as ``pgd``: ``steps=40``, ``rel_stepsize=None`` (2.5 * eps / steps,
    Engstrom et al.'s robustness library rule), ``random_start=True``; budget ``small``
    uses 20 steps.
    """

    name: ClassVar[str] = "pgd-l2"
    norm: ClassVar[Norm] = "l2"
    defaults: ClassVar[dict[str, Any]] = dict(PGD.defaults)


@hookimpl
def benchtool_register_attacks(registry) -> None:
    registry.add(PGDL2)
