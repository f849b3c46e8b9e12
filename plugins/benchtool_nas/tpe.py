"""TPE through Optuna's ask/tell interface (optional: ``pip install benchtool[optuna]``).

Without Optuna the plugin registers nothing and notes why (``benchtool list --all``).
"""

from __future__ import annotations

from typing import Any

from benchtool import hookimpl
from benchtool.contracts.nas import Architecture, SearchStrategy, Trial

try:
    import optuna
except ImportError:  # the optional extra is not installed
    optuna = None


class TPE(SearchStrategy):
    """The tree-structured Parzen estimator (Bergstra et al., NeurIPS 2011) as
    implemented by Optuna's ``TPESampler`` (Akiba et al., KDD 2019).

    Each ask walks the space's decisions with ``suggest_categorical`` (define-by-run,
    so the conditional layer decisions are only suggested when they exist); a failed
    evaluation is told as a failed Optuna trial. ``n_startup_trials`` = 10 is Optuna's
    default; Optuna handles any number of outstanding trials.
    """

    name = "tpe"
    defaults = {"n_startup_trials": 10, "multivariate": False}

    def setup(self) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(
            seed=self.seed, n_startup_trials=self.params["n_startup_trials"],
            multivariate=self.params["multivariate"],
        )
        self._study = optuna.create_study(direction="maximize", sampler=sampler)
        self._trials: list[Any] = []  # Optuna's trial for each of our trial numbers

    def propose(self) -> Architecture:
        trial = self._study.ask()
        decisions = self.space.decision_list
        prefix: list[int] = []
        while (index := self.space.next_decision(tuple(prefix))) is not None:
            decision = decisions[index]
            prefix.append(trial.suggest_categorical(decision.name, list(range(len(decision.choices)))))
        self._trials.append(trial)
        return tuple(prefix)

    def observe(self, trial: Trial, reward: float | None) -> None:
        optuna_trial = self._trials[trial.number]
        if reward is None:
            self._study.tell(optuna_trial, state=optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(optuna_trial, reward)


@hookimpl
def benchtool_register_strategies(registry) -> None:  # noqa: ANN001 - a benchtool.registry.Registrar
    """Add TPE when Optuna is installed; otherwise say how to get it."""
    if optuna is None:
        registry.unavailable(TPE.name, "Optuna is not installed: pip install 'benchtool[optuna]'")
    else:
        registry.add(TPE)
