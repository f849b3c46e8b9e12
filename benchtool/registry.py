"""The registry: every attack, estimator, strategy, search space, model, dataset, loss
weighting and target function the loaded plugins provide, with where each came from."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from benchtool.errors import DuplicateNameError, PluginError, choices_error


@dataclass(frozen=True)
class KindSpec:
    """One kind of plugin: its hook, the base class its objects must derive from, and the
    suite fixture that is parametrized over it."""

    kind: str  # plural, as in `benchtool list KIND`
    hook: str
    base: str  # "module:Class", imported lazily
    fixture: str

    def base_class(self) -> type:
        module, _, cls = self.base.partition(":")
        return getattr(importlib.import_module(module), cls)


KINDS: dict[str, KindSpec] = {
    spec.kind: spec
    for spec in (
        KindSpec("attacks", "benchtool_register_attacks", "benchtool.contracts.attack:Attack", "attack"),
        KindSpec(
            "estimators", "benchtool_register_estimators",
            "benchtool.contracts.uncertainty:UncertaintyEstimator", "estimator",
        ),
        KindSpec("strategies", "benchtool_register_strategies", "benchtool.contracts.nas:SearchStrategy", "strategy"),
        KindSpec(
            "search_spaces", "benchtool_register_search_spaces", "benchtool.contracts.nas:SearchSpace", "search_space"
        ),
        KindSpec("models", "benchtool_register_models", "benchtool.contracts.model:ModelSpec", "model"),
        KindSpec("datasets", "benchtool_register_datasets", "benchtool.contracts.data:Dataset", "dataset"),
        KindSpec(
            "loss_weightings", "benchtool_register_loss_weightings",
            "benchtool.contracts.limits:LossWeighting", "loss_weighting",
        ),
        KindSpec(
            "target_functions", "benchtool_register_target_functions",
            "benchtool.contracts.limits:TargetFunction", "target_function",
        ),
    )
}
KIND_ALIASES = {"search-spaces": "search_spaces", "loss-weightings": "loss_weightings",
                "target-functions": "target_functions"}


def resolve_kind(kind: str) -> KindSpec:
    """The KindSpec for a kind name; a UsageError listing the valid kinds otherwise."""
    spec = KINDS.get(KIND_ALIASES.get(kind, kind))
    if spec is None:
        raise choices_error("plugin kind", kind, list(KINDS))
    return spec


@dataclass(frozen=True)
class PluginSource:
    """The plugin module (entry point) that registered something, and its distribution."""

    name: str  # the entry-point name, or the module name for -p plugins
    module: str
    distribution: str
    version: str


@dataclass(frozen=True)
class Entry:
    """One registered object."""

    kind: str
    name: str
    obj: Any
    source: PluginSource
    description: str

    def create(self, **kwargs: Any) -> Any:
        """A fresh instance (classes are instantiated; other objects returned as they are)."""
        return self.obj(**kwargs) if inspect.isclass(self.obj) else self.obj


def first_doc_line(obj: Any) -> str:
    """The docstring's first paragraph as one line: the plugin's description."""
    doc = (inspect.getdoc(obj) or "").strip()
    return " ".join(doc.split("\n\n", 1)[0].split()) if doc else ""


class Registry:
    """All registered entries, by kind and name."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self.unavailable: list[tuple[str, str, PluginSource, str]] = []  # (kind, name, source, reason)

    def add(self, entry: Entry) -> None:
        existing = self._entries[entry.kind].get(entry.name)
        if existing is not None:
            a, b = existing.source, entry.source
            raise DuplicateNameError(
                f"{KINDS[entry.kind].fixture.replace('_', ' ')} name {entry.name!r} is registered twice: "
                f"by plugin {a.name!r} of distribution {a.distribution} {a.version} and by plugin {b.name!r} "
                f"of distribution {b.distribution} {b.version}"
            )
        self._entries[entry.kind][entry.name] = entry

    def entries(self, kind: str) -> list[Entry]:
        return sorted(self._entries[resolve_kind(kind).kind].values(), key=lambda e: e.name)

    def names(self, kind: str) -> list[str]:
        return [e.name for e in self.entries(kind)]

    def get(self, kind: str, name: str) -> Entry:
        spec = resolve_kind(kind)
        try:
            return self._entries[spec.kind][name]
        except KeyError:
            raise choices_error(spec.fixture.replace("_", " "), name, self.names(spec.kind)) from None

    def create(self, kind: str, name: str, **kwargs: Any) -> Any:
        return self.get(kind, name).create(**kwargs)

    def all_entries(self) -> list[Entry]:
        return [e for kind in KINDS for e in self.entries(kind)]


class Registrar:
    """What a registration hook receives: adds objects of one kind on behalf of one plugin."""

    def __init__(self, registry: Registry, spec: KindSpec, source: PluginSource) -> None:
        self._registry = registry
        self._spec = spec
        self._source = source

    @property
    def kind(self) -> str:
        return self._spec.kind

    def add(self, name: str, obj: Any, *, description: str | None = None) -> None:
        """Register ``obj`` (a subclass of the kind's base class, or an instance of it)."""
        if not isinstance(name, str) or not name or name != name.strip() or "[" in name:
            raise PluginError(f"plugin {self._source.name!r}: invalid {self._spec.fixture} name {name!r}")
        base = self._spec.base_class()
        ok = issubclass(obj, base) if inspect.isclass(obj) else isinstance(obj, base)
        if not ok:
            raise PluginError(
                f"plugin {self._source.name!r} registered {self._spec.fixture} {name!r} as {obj!r}, "
                f"expected a subclass or instance of {base.__module__}.{base.__qualname__}"
            )
        if inspect.isclass(obj) and inspect.isabstract(obj):
            missing = sorted(getattr(obj, "__abstractmethods__", ()))
            raise PluginError(
                f"plugin {self._source.name!r}: {self._spec.fixture} {name!r} ({obj.__qualname__}) "
                f"does not implement {missing}"
            )
        self._registry.add(
            Entry(self._spec.kind, name, obj, self._source, description or first_doc_line(obj))
        )

    def unavailable(self, name: str, reason: str) -> None:
        """Note something this plugin could provide but not here (a missing extra, say):
        it is not registered, and ``benchtool list --all`` shows the reason."""
        self._registry.unavailable.append((self._spec.kind, name, self._source, reason))
