"""REINFORCE with an LSTM controller, Zoph & Le, "Neural Architecture Search with
Reinforcement Learning", ICLR 2017."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchtool import hookimpl
from benchtool.contracts.nas import Architecture, SearchStrategy, Trial
from benchtool.errors import HyperparameterError
from benchtool_nas._controller import ControllerParams, adam_update, forward_backward, head_probs, lstm_step

ADAM_BETAS = (0.9, 0.999)  # Kingma & Ba 2015 defaults; Zoph & Le give only the learning rate
ADAM_EPS = 1e-8


class Reinforce(SearchStrategy):
    """An LSTM controller samples one decision at a time; after each told reward R
    (validation accuracy) its parameters take an Adam step along (R - b) * grad log p,
    with b an exponential moving average of previous rewards (Zoph & Le 2017).

    Hyper-parameters and their source: a 2-layer LSTM with 35 hidden units, Adam with
    learning rate 6e-4, weights uniform in [-0.08, 0.08] (Zoph & Le, Sec. 4.1); baseline
    decay 0.95 (Zoph & Le do not give it; ENAS, Pham et al. 2018); entropy bonus weight
    0 (none in Zoph & Le; ENAS used 1e-4). One update per told reward, in tell order,
    computed at the current parameters, like Zoph & Le's asynchronous replicas; failed
    evaluations (None) are not learned from.
    """

    name = "reinforce"
    defaults = {
        "hidden_size": 35,
        "lstm_layers": 2,
        "learning_rate": 6e-4,
        "init_range": 0.08,
        "baseline_decay": 0.95,
        "entropy_weight": 0.0,
    }

    def __init__(self, **hyperparams: Any) -> None:
        super().__init__(**hyperparams)
        p = self.params
        for key in ("hidden_size", "lstm_layers"):
            if not isinstance(p[key], int) or p[key] < 1:
                raise HyperparameterError(f"{self.name}: {key} must be an integer >= 1, got {p[key]!r}")
        if not 0.0 <= p["baseline_decay"] < 1.0:
            raise HyperparameterError(f"{self.name}: baseline_decay must lie in [0, 1), got {p['baseline_decay']!r}")
        if not (p["learning_rate"] > 0 and p["init_range"] >= 0 and p["entropy_weight"] >= 0):
            raise HyperparameterError(f"{self.name}: learning_rate must be > 0, init_range and entropy_weight >= 0")

    def setup(self) -> None:
        p = self.params
        layers, hidden = p["lstm_layers"], p["hidden_size"]
        decisions = self.space.decision_list
        self._counts = np.array([len(d.choices) for d in decisions], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(self._counts)[:-1]]).astype(np.int64)
        total = int(self._counts.sum())
        self.controller = ControllerParams.zeros(layers, hidden, total)
        self.controller.flat[:] = self.rng.uniform(-p["init_range"], p["init_range"], self.controller.flat.shape)
        self._grads = ControllerParams.zeros(layers, hidden, total)
        self._m = np.zeros_like(self.controller.flat)
        self._v = np.zeros_like(self.controller.flat)
        self._updates = 0
        self.baseline: float | None = None
        self._h = np.zeros((layers, hidden))
        self._c = np.zeros((layers, hidden))
        self._gates = np.zeros((layers, 4 * hidden))
        self._probs = np.zeros(int(self._counts.max()))
        self._warm_up()

    def _warm_up(self) -> None:
        """Load (or compile, on a machine's first run) every kernel here, under the
        harness's start timeout rather than the first ask's, without touching the
        controller or ``self.rng``."""
        first = next(self.space.enumerate())
        lstm_step(self.controller.W, self.controller.b, self.controller.g, self._h, self._c, self._gates)
        head_probs(self.controller.A, self.controller.a, self._h[-1], 0, int(self._counts[0]), self._probs)
        self._gradient(first, 0.0, 0.0)
        scratch = np.zeros_like(self.controller.flat)
        adam_update(scratch, scratch.copy(), scratch.copy(), scratch.copy(), 1, 1.0, *ADAM_BETAS, ADAM_EPS)

    def propose(self) -> Architecture:
        w, space = self.controller, self.space
        h, c, probs = self._h, self._c, self._probs
        h.fill(0.0)
        c.fill(0.0)
        x = w.g
        prefix: list[int] = []
        while (d := space.next_decision(tuple(prefix))) is not None:
            lstm_step(w.W, w.b, x, h, c, self._gates)
            n, offset = int(self._counts[d]), int(self._offsets[d])
            head_probs(w.A, w.a, h[-1], offset, n, probs)
            choice = _draw(probs, n, self.rng.random())
            prefix.append(choice)
            x = w.E[offset + choice]
        return tuple(prefix)

    def observe(self, trial: Trial, reward: float | None) -> None:
        if reward is None:
            return
        p = self.params
        if self.baseline is None:
            self.baseline = reward
        advantage = reward - self.baseline
        self.baseline = p["baseline_decay"] * self.baseline + (1.0 - p["baseline_decay"]) * reward
        if advantage == 0.0 and p["entropy_weight"] == 0.0:
            return  # a zero gradient: nothing to learn
        self.update(trial.arch, advantage)

    def update(self, arch: Architecture, advantage: float) -> None:
        """One Adam step on ``-(advantage * log p(arch) + entropy_weight * H)``."""
        self._gradient(arch, advantage, float(self.params["entropy_weight"]))
        self._updates += 1
        adam_update(self.controller.flat, self._grads.flat, self._m, self._v, self._updates,
                    float(self.params["learning_rate"]), ADAM_BETAS[0], ADAM_BETAS[1], ADAM_EPS)

    def log_prob(self, arch: Architecture) -> float:
        """log p(arch) under the current controller (nothing is updated)."""
        return self._gradient(arch, 0.0, 0.0)[0]

    def _gradient(self, arch: Architecture, advantage: float, entropy_weight: float) -> tuple[float, float]:
        """Fill ``self._grads``; return (log p(arch), summed entropy of the walk)."""
        w, g = self.controller, self._grads
        g.flat.fill(0.0)
        decisions = np.array(self.space.walk(arch), dtype=np.int64)
        choices = np.array(arch, dtype=np.int64)
        return forward_backward(
            w.W, w.b, w.A, w.a, w.E, w.g, g.W, g.b, g.A, g.a, g.E, g.g,
            decisions, choices, self._offsets, self._counts, float(advantage), entropy_weight,
        )


def _draw(probs: np.ndarray, n: int, u: float) -> int:
    """Inverse-CDF draw from ``probs[:n]`` with a uniform ``u``."""
    total = 0.0
    for choice in range(n - 1):
        total += probs[choice]
        if u < total:
            return choice
    return n - 1


@hookimpl
def benchtool_register_strategies(registry) -> None:  # noqa: ANN001 - a benchtool.registry.Registrar
    """Add the REINFORCE controller."""
    registry.add(Reinforce)
