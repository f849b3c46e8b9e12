"""Deep ensembles: M independently seeded networks, their predictions averaged."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from concurrent.futures import wait
from typing import Any, ClassVar

import torch
from torch import nn

from benchtool import hookimpl
from benchtool.contracts.data import Task
from benchtool.contracts.uncertainty import EstimationTask, UncertaintyEstimator
from benchtool.errors import HyperparameterError, UsageError
from benchtool_uncertainty._training import gaussian_head, gaussian_nll, train_with_loss

MEMBERS_BY_BUDGET = {"small": 2, "default": 5, "full": 5}  # the paper's M = 5; small: the fewest that make an ensemble


class DeepEnsemble(UncertaintyEstimator):
    """M networks trained from independent seeds, treated as a uniformly weighted mixture
    (Lakshminarayanan, Pritzel & Blundell, NeurIPS 2017, "Simple and Scalable Predictive
    Uncertainty Estimation using Deep Ensembles"). Classification members are the zoo's
    networks (cross-entropy, a proper scoring rule); regression members predict a mean and
    a variance trained by Gaussian NLL, as in the paper. Adversarial training is omitted."""

    name: ClassVar[str] = "deep-ensemble"
    tasks: ClassVar[frozenset[Task]] = frozenset({"classification", "regression"})
    defaults: ClassVar[dict[str, Any]] = {"members": None}  # M; None takes MEMBERS_BY_BUDGET
    fans_out: ClassVar[bool] = True  # members train through the run's executor (--bt-executor ray: on the driver)

    def fit(self, task: EstimationTask) -> None:
        """Train the members through the run's executor (:func:`benchtool.executors.cell_executor`):
        one after another locally, as parallel tasks with ``--bt-executor ray``. Each member
        draws only from its own seed (``task.seed + i``), so the ensemble is the same either way."""
        from benchtool.executors import Resources, cell_executor

        count = int(self.params["members"] or MEMBERS_BY_BUDGET[task.budget])
        if count < 2:
            raise HyperparameterError(f"deep-ensemble needs members >= 2, got {count}")
        self.regression = task.info.task == "regression"
        seeds = [task.seed + i for i in range(count)]
        executor = cell_executor()
        gpus = 1.0 if task.device.type == "cuda" and executor.capacity().gpus >= 1 else 0.0
        need = Resources(cpus=1.0, gpus=gpus)
        if self.regression:
            job = functools.partial(_gaussian_member, task.build_network, task.recipe, task.train,
                                    2 * task.info.output_dim, device=task.device, estimator=self.name,
                                    cache=task.own_network)
            futures = [executor.submit(job, seed, resources=need) for seed in seeds]
        else:  # the base model is member 0
            futures = [executor.submit(task.train_member, seed, resources=need) for seed in seeds[1:]]
        wait(futures)
        trained = [f.result().to(task.device) for f in futures]  # the first failure, in member order, raises
        self.members = trained if self.regression else [task.model, *trained]

    def sample(self, x: torch.Tensor) -> Iterator[Any]:
        for member in self.members:
            out = member(x)
            if self.regression:
                mean, log_variance = gaussian_head(out)
                yield mean.unsqueeze(0), log_variance.exp().unsqueeze(0)
            else:
                yield torch.softmax(out, dim=-1).unsqueeze(0)


def _gaussian_member(build_network: Any, recipe: Any, train: Any, outputs: int, seed: int, *,
                     device: torch.device, estimator: str, cache: Any = None) -> nn.Module:
    """One regression member: a fresh network with a mean and a variance per output, seeded
    by ``seed`` alone and trained by Gaussian NLL (a module function: executors pickle it).
    Through the task's network cache (``EstimationTask.own_network``) where it has one, keyed
    by the member's seed, so a run with cached models does not train it again (the toy
    regression's 5 members: 20 s of the default run's cell on one thread)."""
    from benchtool.executors import task_device

    if build_network is None or recipe is None:
        raise UsageError(f"estimator {estimator!r} trains its own network and needs EstimationTask.build_network "
                         "and .recipe")
    device = task_device(device)

    def build() -> nn.Module:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            return build_network(outputs)

    def trained(network: nn.Module) -> nn.Module:  # draws only from its own seeded shuffle generator
        return train_with_loss(network, train, recipe, gaussian_nll, seed=seed, device=device)

    if cache is None:
        return trained(build())
    return cache({"estimator": estimator, "member": "gaussian-nll", "member_seed": seed, "outputs": outputs},
                 build, trained).to(device)


@hookimpl
def benchtool_register_estimators(registry) -> None:
    registry.add(DeepEnsemble)
