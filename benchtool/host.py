"""The host: discovers plugin modules through entry points, registers what they provide.

Discovery follows pytest: one entry point per plugin module in group ``benchtool``;
``-p MODULE`` adds a local module; ``-p no:NAME`` or ``BENCHTOOL_DISABLE_PLUGINS=a,b``
blocks one by name. A module that fails to import or register is reported (its name and
the error's last line) and every other plugin still loads.
"""

from __future__ import annotations

import importlib
import os
import platform
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy

from benchtool import __version__, hookspecs
from benchtool.errors import DuplicateNameError, PluginError, UsageError
from benchtool.registry import KINDS, Entry, PluginSource, Registrar, Registry

ENTRY_POINT_GROUP = "benchtool"
DISABLE_ENV = "BENCHTOOL_DISABLE_PLUGINS"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin module that could not be imported or could not register."""

    name: str
    distribution: str
    stage: str  # "import" | "register"
    error: str  # the exception's last line

    def __str__(self) -> str:
        return f"plugin {self.name!r} ({self.distribution}) failed to {self.stage}: {self.error}"


@dataclass
class Host:
    """Loaded plugins and their registry."""

    pm: pluggy.PluginManager
    registry: Registry
    sources: dict[str, PluginSource] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def entries(self, kind: str) -> list[Entry]:
        return self.registry.entries(kind)

    def run_metadata(self, config: Any) -> dict[str, Any]:
        """Versions and device, extended by every plugin's ``benchtool_run_metadata``."""
        import numba
        import torch

        meta: dict[str, Any] = {
            "benchtool": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numba": numba.__version__,
            "host": platform.node(),
            "plugins": {s.name: f"{s.distribution} {s.version}" for s in self.sources.values()},
        }
        device = getattr(config, "device", None)
        if device is not None:
            meta["device"] = str(device)
            if device.type == "cuda":
                meta["device_name"] = torch.cuda.get_device_name(device)
                meta["cuda"] = torch.version.cuda
        self.hook.benchtool_run_metadata(config=config, metadata=meta)
        return meta


def blocked_from_env() -> list[str]:
    return [name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()]


def _last_line(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return lines[-1].strip() if lines else repr(exc)


def load_host(
    modules: Iterable[str] = (),
    blocked: Iterable[str] = (),
    *,
    use_entry_points: bool = True,
) -> Host:
    """Load every plugin: entry points (unless blocked), then ``modules`` given with -p."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked_names = sorted(set(blocked) | set(blocked_from_env()))
    host = Host(pm=pm, registry=Registry(), blocked=blocked_names)
    for name in blocked_names:
        pm.set_blocked(name)

    if use_entry_points:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist else "unknown"
            version = ep.dist.version if ep.dist else "unknown"
            if ep.name in blocked_names:
                continue
            if ep.name in host.sources:
                other = host.sources[ep.name]
                raise PluginError(
                    f"plugin name {ep.name!r} is declared twice: by {other.distribution} {other.version} "
                    f"and by {dist} {version}"
                )
            try:
                module = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import error is the plugin's fault
                host.failures.append(PluginFailure(ep.name, dist, "import", _last_line(exc)))
                continue
            _register_module(host, module, PluginSource(ep.name, ep.value, dist, version))

    for module_name in modules:
        if module_name in blocked_names or module_name in host.sources:
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001
            raise UsageError(f"-p {module_name}: cannot import plugin module: {_last_line(exc)}") from exc
        _register_module(host, module, PluginSource(module_name, module_name, "local", "-"))

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {exc.plugin!r}: {exc}") from exc
    _collect_registrations(host)
    return host


def _register_module(host: Host, module: ModuleType, source: PluginSource) -> None:
    try:
        host.pm.register(module, name=source.name)
    except (ValueError, pluggy.PluginValidationError) as exc:
        host.failures.append(PluginFailure(source.name, source.distribution, "register", _last_line(exc)))
        return
    host.sources[source.name] = source


def _collect_registrations(host: Host) -> None:
    """Call each kind's registration hook plugin by plugin, so every entry knows its source
    and a plugin whose hook raises fails alone."""
    for spec in KINDS.values():
        caller = getattr(host.pm.hook, spec.hook)
        for impl in reversed(caller.get_hookimpls()):
            source = host.sources[host.pm.get_name(impl.plugin)]
            try:
                impl.function(registry=Registrar(host.registry, spec, source))
            except DuplicateNameError:
                raise
            except Exception as exc:  # noqa: BLE001
                host.failures.append(PluginFailure(source.name, source.distribution, "register", _last_line(exc)))
