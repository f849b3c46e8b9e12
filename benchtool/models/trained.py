"""A trained network for a (model, dataset, seed, budget): from the cache, a user's
checkpoint, or the trainer, in that order of preference."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchtool.config import check_budget
from benchtool.contracts.data import DataBundle, DatasetInfo
from benchtool.contracts.model import ModelSpec, TrainRecipe
from benchtool.errors import ContractViolation, UsageError
from benchtool.models.checkpoints import CheckpointCache, cache_key, default_cache_dir, warn
from benchtool.models.training import train

SHOWN_KEYS = 5  # how many mismatched state_dict keys an error lists


def build_seeded(spec: ModelSpec, info: DatasetInfo, seed: int) -> nn.Module:
    """A fresh network whose initial weights depend only on ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.build(info)
    if not isinstance(model, nn.Module):
        raise ContractViolation(spec.name, "build-module", f"build() returned {type(model).__name__}, not nn.Module")
    return model


def recipe_for(spec: ModelSpec, info: DatasetInfo, budget: str) -> TrainRecipe:
    recipe = spec.recipe(info, check_budget(budget))
    if not isinstance(recipe, TrainRecipe):
        raise ContractViolation(spec.name, "recipe", f"recipe() returned {type(recipe).__name__}, not TrainRecipe")
    return recipe


def _listed(names: list[str]) -> str:
    more = f" (+{len(names) - SHOWN_KEYS} more)" if len(names) > SHOWN_KEYS else ""
    return ", ".join(names[:SHOWN_KEYS]) + more


def load_user_checkpoint(model: nn.Module, path: Path, spec: ModelSpec, info: DatasetInfo) -> None:
    """Load a user's state_dict (``--bt-checkpoint``) into a zoo network, or explain why not.
    For a derived model (``lenet-randomized``) it is the base network's state_dict."""
    from benchtool.models.zoo import DerivedSpec

    if isinstance(spec, DerivedSpec):
        model, spec = spec.inner(model), spec.base()
    path = Path(path).expanduser()
    where = f"--bt-checkpoint {path}"
    if not path.is_file():
        raise UsageError(f"{where}: no such file")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{where}: not loadable with torch.load(weights_only=True): {first}") from None
    state = content.get("state_dict", content) if isinstance(content, dict) else content
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"{where}: expected a state_dict (a dict of tensors) or a dict holding one under 'state_dict'")
    if all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    expected = model.state_dict()
    problems = []
    if missing := sorted(set(expected) - set(state)):
        problems.append(f"missing keys {_listed(missing)}")
    if unexpected := sorted(set(state) - set(expected)):
        problems.append(f"unexpected keys {_listed(unexpected)}")
    shapes = [
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape
    ]
    if shapes:
        problems.append(f"shape mismatches {_listed(shapes)}")
    if problems:
        raise UsageError(
            f"{where} does not fit model {spec.name!r} built for dataset {info.name!r} "
            f"(input {info.input_shape}, {info.num_classes or info.output_dim} outputs): " + "; ".join(problems)
        )
    model.load_state_dict(state)


def placed(model: nn.Module, spec: ModelSpec, device: torch.device) -> nn.Module:
    """``model`` in eval mode on ``device``; on a CPU with its 4-D weights channels-last
    where ``spec`` allows it (:attr:`ModelSpec.channels_last_on_cpu`; the values are the same)."""
    model = model.to(device).eval()
    if device.type == "cpu" and spec.channels_last_on_cpu:
        model = model.to(memory_format=torch.channels_last)
    return model


def trained_model(
    spec: ModelSpec,
    bundle: DataBundle,
    *,
    seed: int,
    budget: str,
    device: torch.device | str,
    cache_dir: Path | None,
    checkpoint: Path | None = None,
    progress: bool = True,
) -> nn.Module:
    """The network ``spec`` trained on ``bundle`` with the recipe for ``budget``, in eval mode
    on ``device`` (:func:`placed`). ``checkpoint`` loads a user's state_dict instead of
    training; otherwise the checkpoint cache (``cache_dir``, default :func:`default_cache_dir`)
    is consulted and filled, so a machine trains each key once."""
    info = bundle.info
    if not spec.supports(info):
        raise UsageError(
            f"model {spec.name!r} cannot be built for dataset {info.name!r} "
            f"(task {info.task!r}, input shape {info.input_shape}); it supports tasks {sorted(spec.tasks)}"
        )
    from benchtool.models.zoo import DerivedSpec  # here: ``python -m benchtool.models.recipes`` imports cleanly

    device = torch.device(device)
    if isinstance(spec, DerivedSpec):  # the base's trained network (cached under the base's key), wrapped
        net = trained_model(spec.base(), bundle, seed=seed, budget=budget, device=device, cache_dir=cache_dir,
                            checkpoint=checkpoint, progress=progress)
        return placed(spec.wrap(net, info), spec, device)
    if checkpoint is not None:
        model = build_seeded(spec, info, seed)
        load_user_checkpoint(model, checkpoint, spec, info)
        return placed(model, spec, device)

    recipe = recipe_for(spec, info, budget)

    def trained(model: nn.Module) -> nn.Module:
        train(model, bundle, recipe, seed=seed, device=device, progress=progress,
              label=f"{spec.name}/{info.name} seed {seed}")
        return model

    model = through_cache(cache_key(spec.name, info, seed, recipe), lambda: build_seeded(spec, info, seed), trained,
                          device=device, cache_dir=cache_dir)
    return placed(model, spec, device)


def through_cache(key: dict[str, Any], build: Callable[[], nn.Module], train_: Callable[[nn.Module], nn.Module], *,
                  device: torch.device, cache_dir: Path | None = None) -> nn.Module:
    """``train_(build())``, or, when the checkpoint cache holds ``key``, ``build()`` with the
    cached weights, on ``device``. One process trains a key while others wait for its file;
    an unusable cache is a warning and the network is trained without it. ``build`` is
    called once on a miss, so the network is the one an uncached run would train."""
    cache = CheckpointCache(cache_dir if cache_dir is not None else default_cache_dir())
    path = cache.path_for(key)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(cache.lock(path))
            cached = True
        except OSError as exc:
            warn(f"checkpoint cache {cache.folder} is not usable ({exc}); training without it")
            cached = False
        if cached and path.exists():
            model = build()
            if cache.load(path, key, model):
                return model.to(device)
        model = train_(build())  # fresh: a failed load may have half-filled the other
        if cached:
            cache.save(path, key, model)
        return model


def own_network(model: str, info: DatasetInfo, seed: int, recipe: TrainRecipe, trains: dict[str, Any],
                build: Callable[[], nn.Module], train_: Callable[[nn.Module], nn.Module], *,
                device: torch.device | str, cache_dir: Path | None = None) -> nn.Module:
    """A network an estimator trains for itself (``trains``: its name and hyper-parameters,
    which with ``model``, the dataset, seed and recipe make the cache key), once per machine
    like the zoo's (:func:`through_cache`); in eval mode, without gradients."""
    described = json.loads(json.dumps(trains, sort_keys=True, default=repr))  # JSON-able, as the key must be
    key = {**cache_key(f"{model}.{described.get('estimator', 'own')}", info, seed, recipe), "trains": described}
    network = through_cache(key, build, train_, device=torch.device(device), cache_dir=cache_dir)
    return network.eval().requires_grad_(False)


def ensemble_member(spec: ModelSpec, bundle: DataBundle, seed: int, *, budget: str,
                    device: torch.device | str) -> nn.Module:
    """``spec`` trained on ``bundle`` with ``seed``, on the device an executor assigned to the
    call (else ``device``): a module function, so an executor can pickle
    ``functools.partial(ensemble_member, spec, bundle, budget=..., device=...)`` and run it in
    another process. The checkpoint cache makes it the same network wherever it runs."""
    from benchtool.executors import task_device  # here: executors import the models package

    return trained_model(spec, bundle, seed=seed, budget=budget, device=task_device(device), cache_dir=None)
