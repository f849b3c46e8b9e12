"""Snapshots the harness takes to prove a plugin left a model and its inputs alone."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from benchtool.errors import ContractViolation


@dataclass
class ModelSnapshot:
    """Parameters, buffers (BatchNorm running statistics) and train/eval flags of a model."""

    tensors: dict[str, torch.Tensor]
    training: dict[str, bool]

    @classmethod
    def take(cls, model: nn.Module) -> ModelSnapshot:
        tensors = {f"param:{k}": v.detach().clone() for k, v in model.named_parameters()}
        tensors.update({f"buffer:{k}": v.detach().clone() for k, v in model.named_buffers()})
        training = {name or "<root>": m.training for name, m in model.named_modules()}
        return cls(tensors, training)

    def restore(self, model: nn.Module) -> None:
        """Put the snapshot back, so a plugin that changed the model cannot spoil later cases."""
        now = {f"param:{k}": v for k, v in model.named_parameters()}
        now.update({f"buffer:{k}": v for k, v in model.named_buffers()})
        with torch.no_grad():
            for key, before in self.tensors.items():
                current = now.get(key)
                if current is not None and current.shape == before.shape:
                    current.copy_(before)
        for name, module in model.named_modules():
            module.training = self.training.get(name or "<root>", module.training)

    def unchanged(self, model: nn.Module) -> bool:
        """Whether the model still matches, with one device sync per device (the fast path)."""
        now = {f"param:{k}": v for k, v in model.named_parameters()}
        now.update({f"buffer:{k}": v for k, v in model.named_buffers()})
        if now.keys() != self.tensors.keys() or any(now[k].shape != v.shape for k, v in self.tensors.items()):
            return False
        if any(self.training.get(name or "<root>") != m.training for name, m in model.named_modules()):
            return False
        differs: dict[torch.device, list[torch.Tensor]] = {}
        for key, before in self.tensors.items():
            differs.setdefault(before.device, []).append((now[key].detach() != before).any())
        return not any(torch.stack(flags).any().item() for flags in differs.values())

    def verify(self, model: nn.Module, plugin: str) -> None:
        """Raise :class:`ContractViolation` if anything differs from the snapshot."""
        if self.unchanged(model):
            return
        now = dict(model.named_parameters())
        now_buffers = dict(model.named_buffers())
        for key, before in self.tensors.items():
            kind, name = key.split(":", 1)
            current = now.get(name) if kind == "param" else now_buffers.get(name)
            if current is None or current.shape != before.shape or not torch.equal(current.detach(), before):
                raise ContractViolation(plugin, "model-unchanged", f"the model's {kind} {name!r} was modified")
        for name, module in model.named_modules():
            if self.training.get(name or "<root>") != module.training:
                raise ContractViolation(
                    plugin, "model-unchanged",
                    f"the train/eval flag of module {name or '<root>'!r} was changed to training={module.training}",
                )


def verify_untouched(plugin: str, original: torch.Tensor, current: torch.Tensor, what: str = "input") -> None:
    """The caller's tensor must be bit-identical after the plugin ran."""
    if not torch.equal(original, current):
        raise ContractViolation(plugin, "input-untouched", f"the caller's {what} tensor was modified in place")
