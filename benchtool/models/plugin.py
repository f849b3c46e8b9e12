"""The built-in model zoo, registered through the same hook as any third-party plugin."""

from __future__ import annotations

from benchtool import hookimpl
from benchtool.models.zoo import LeNetAdversarialSpec, LeNetRandomizedSpec, LeNetSpec, MlpSpec, ResNet20Spec

BUILTIN_MODELS = (MlpSpec, LeNetSpec, ResNet20Spec, LeNetAdversarialSpec, LeNetRandomizedSpec)


@hookimpl
def benchtool_register_models(registry) -> None:  # noqa: ANN001 - a benchtool.registry.Registrar
    """Add every zoo architecture under its ``name``."""
    for spec in BUILTIN_MODELS:
        registry.add(spec)
