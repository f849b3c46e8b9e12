"""Snapshots the harness takes to prove a plugin left a model and its inputs alone.

The trained models of a run are shared by its cells, so whatever a plugin leaves on one
(changed weights, a train/eval flag, a forward hook, a frozen parameter) would break the
cells after it and be blamed on other plugins. A snapshot covers all of it, is checked
after each plugin call and is put back when anything differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules import module as module_globals

from benchtool.errors import ContractViolation

# hook registries of a module: (attribute, what it holds, in words); the *_with_kwargs and
# *_always_called maps hold flags of the hooks in the map before them
MODULE_HOOKS: tuple[tuple[str, str], ...] = (
    ("_forward_hooks", "forward hook"),
    ("_forward_hooks_with_kwargs", "forward hook"),
    ("_forward_hooks_always_called", "forward hook"),
    ("_forward_pre_hooks", "forward pre-hook"),
    ("_forward_pre_hooks_with_kwargs", "forward pre-hook"),
    ("_backward_hooks", "backward hook"),
    ("_backward_pre_hooks", "backward pre-hook"),
)
GLOBAL_HOOKS: tuple[tuple[str, str], ...] = tuple((f"_global{attr}", f"global {words}") for attr, words in MODULE_HOOKS)
TENSOR_HOOKS: tuple[tuple[str, str], ...] = (
    ("_backward_hooks", "gradient hook"),
    ("_post_accumulate_grad_hooks", "post-accumulate-grad hook"),
)
FULL_BACKWARD_FLAG = "_is_full_backward_hook"

Hooks = dict[str, dict]  # attribute -> a copy of its (non-empty) map


def _copy_hooks(owner: object, attributes: tuple[tuple[str, str], ...]) -> Hooks:
    return {attr: dict(found) for attr, _ in attributes if (found := getattr(owner, attr, None))}


def _hook_change(owner: object, saved: Hooks, attributes: tuple[tuple[str, str], ...], where: str) -> str | None:
    """Words for the first hook map of ``owner`` that differs from ``saved`` (None: same)."""
    for attr, words in attributes:
        now = getattr(owner, attr, None) or {}
        before = saved.get(attr, {})
        if now != before or list(now) != list(before):
            return f"the {words}s {where} were changed ({len(before)} before, {len(now)} after)"
    return None


def _restore_hooks(owner: object, saved: Hooks, attributes: tuple[tuple[str, str], ...]) -> None:
    for attr, _ in attributes:
        now = getattr(owner, attr, None)
        before = saved.get(attr, {})
        if now is not None and (now != before or list(now) != list(before)):
            now.clear()  # in place: autograd and the removable handles hold these very maps
            now.update(before)


def _named_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    yield from ((f"param:{k}", v) for k, v in model.named_parameters())
    yield from ((f"buffer:{k}", v) for k, v in model.named_buffers())


Group = tuple[torch.device, torch.dtype]


def _flat_copies(tensors: dict[str, torch.Tensor]) -> tuple[dict[Group, list[str]], dict[Group, torch.Tensor]]:
    """The tensors copied into one flat buffer per (device, dtype): one copy kernel per group
    instead of one per tensor, which is what a snapshot costs on a GPU (launches, not bytes)."""
    keys: dict[Group, list[str]] = {}
    for key, tensor in tensors.items():
        keys.setdefault((tensor.device, tensor.dtype), []).append(key)
    flats = {group: _flat(tensors, names) for group, names in keys.items()}
    return keys, flats


def _flat(tensors: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    return torch.cat([tensors[name].detach().reshape(-1) for name in names])


@dataclass
class ModelSnapshot:
    """Parameters, buffers (BatchNorm running statistics), train/eval flags, ``requires_grad``
    flags and every hook of a model (its modules', its parameters' and torch's global ones).

    The tensors are held as one flat copy per (device, dtype); ``tensors`` are views into it."""

    tensors: dict[str, torch.Tensor]
    group_keys: dict[Group, list[str]]  # (device, dtype) -> the tensors in its flat copy, in order
    flats: dict[Group, torch.Tensor]
    training: dict[str, bool]
    requires_grad: dict[str, bool]
    module_hooks: dict[str, Hooks]  # module name ("" for the root) -> its non-empty hook maps
    full_backward: dict[str, bool | None]
    tensor_hooks: dict[str, Hooks]  # parameter name -> its non-empty hook maps
    global_hooks: Hooks

    @classmethod
    def take(cls, model: nn.Module) -> ModelSnapshot:
        live = dict(_named_tensors(model))
        group_keys, flats = _flat_copies(live)
        views = {}
        for group, names in group_keys.items():
            parts = flats[group].split([live[name].numel() for name in names])
            views.update({name: part.view(live[name].shape) for name, part in zip(names, parts)})
        tensors = {name: views[name] for name in live}  # the model's order, for the first change named
        modules = list(model.named_modules())
        training = {name or "<root>": m.training for name, m in modules}
        hooks = {name: found for name, m in modules if (found := _copy_hooks(m, MODULE_HOOKS))}
        full = {name: getattr(m, FULL_BACKWARD_FLAG, None) for name, m in modules}
        params = list(model.named_parameters())
        requires_grad = {k: p.requires_grad for k, p in params}
        tensor_hooks = {k: found for k, p in params if (found := _copy_hooks(p, TENSOR_HOOKS))}
        return cls(tensors, group_keys, flats, training, requires_grad, hooks, full, tensor_hooks,
                   _copy_hooks(module_globals, GLOBAL_HOOKS))

    def restore(self, model: nn.Module) -> None:
        """Put the snapshot back, so a plugin that changed the model cannot spoil later cases."""
        now = dict(_named_tensors(model))
        with torch.no_grad():
            for key, before in self.tensors.items():
                current = now.get(key)
                if current is not None and current.shape == before.shape:
                    current.copy_(before)
        for name, module in model.named_modules():
            module.training = self.training.get(name or "<root>", module.training)
            _restore_hooks(module, self.module_hooks.get(name, {}), MODULE_HOOKS)
            if name in self.full_backward and getattr(module, FULL_BACKWARD_FLAG, None) != self.full_backward[name]:
                setattr(module, FULL_BACKWARD_FLAG, self.full_backward[name])
        for name, param in model.named_parameters():
            if name in self.requires_grad and param.requires_grad != self.requires_grad[name]:
                param.requires_grad_(self.requires_grad[name])
            _restore_hooks(param, self.tensor_hooks.get(name, {}), TENSOR_HOOKS)
        _restore_hooks(module_globals, self.global_hooks, GLOBAL_HOOKS)

    def unchanged(self, model: nn.Module) -> bool:
        """Whether the model still matches, with one device sync per device (the fast path)."""
        return self._first_change(model, exact=False) is None

    def violation(self, model: nn.Module, plugin: str) -> ContractViolation | None:
        """The first difference as ``plugin``'s ``model-unchanged`` failure (None: unchanged)."""
        if self.unchanged(model):
            return None
        change = self._first_change(model, exact=True) or "the model was modified"
        return ContractViolation(plugin, "model-unchanged", change)

    def verify(self, model: nn.Module, plugin: str) -> None:
        """Raise :class:`ContractViolation` if anything differs, after putting the model back."""
        found = self.violation(model, plugin)
        if found is not None:
            self.restore(model)
            raise found

    def _first_change(self, model: nn.Module, *, exact: bool) -> str | None:
        """Words for the first difference; ``exact`` compares tensors one by one (the slow
        path, for the message), else one flat comparison per (device, dtype) and one device
        sync per device."""
        now = dict(_named_tensors(model))
        if now.keys() != self.tensors.keys():
            return f"its parameters or buffers were replaced ({sorted(now.keys() ^ self.tensors.keys())[:3]} ...)"
        for key, before in self.tensors.items():
            current = now[key]
            kind, name = key.split(":", 1)
            if (current.shape, current.device, current.dtype) != (before.shape, before.device, before.dtype) or (
                exact and not torch.equal(current.detach(), before)
            ):
                return f"the model's {kind} {name!r} was modified"
        differs: dict[torch.device, list[torch.Tensor]] = {}
        if not exact:
            for group, names in self.group_keys.items():
                differs.setdefault(group[0], []).append((_flat(now, names) != self.flats[group]).any())
        if any(torch.stack(flags).any().item() for flags in differs.values()):
            return "the model's parameters or buffers were modified"
        for name, module in model.named_modules():
            label = name or "<root>"
            if self.training.get(label) != module.training:
                return f"the train/eval flag of module {label!r} was changed to training={module.training}"
            change = _hook_change(module, self.module_hooks.get(name, {}), MODULE_HOOKS, f"of module {label!r}")
            if change is not None:
                return change
        for name, param in model.named_parameters():
            if self.requires_grad.get(name) != param.requires_grad:
                return f"requires_grad of the model's parameter {name!r} was changed to {param.requires_grad}"
            change = _hook_change(param, self.tensor_hooks.get(name, {}), TENSOR_HOOKS, f"of parameter {name!r}")
            if change is not None:
                return change
        return _hook_change(module_globals, self.global_hooks, GLOBAL_HOOKS,
                            "(torch.nn.modules.module.register_module_*_hook)")


def verify_untouched(plugin: str, original: torch.Tensor, current: torch.Tensor, what: str = "input") -> None:
    """The caller's tensor must be bit-identical after the plugin ran."""
    if not torch.equal(original, current):
        raise ContractViolation(plugin, "input-untouched", f"the caller's {what} tensor was modified in place")
