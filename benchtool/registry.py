"""The registry: every attack, estimator, strategy, search space, model, dataset, loss
weighting and target function the loaded plugins provide, with where each came from."""

from __future__ import annotations

import importlib
import inspect
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

from benchtool.errors import ContractViolation, DuplicateNameError, choices_error


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

    def find(self, kind: str, name: str) -> Entry | None:
        """The entry, or None."""
        return self._entries[resolve_kind(kind).kind].get(name)

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


_NOT_GIVEN: Any = object()


class Registrar:
    """What a registration hook receives: adds objects of one kind on behalf of one plugin.

    ``registry.add(MyAttack)`` registers a class (or an instance) under its ``name`` attribute.
    The older ``registry.add(name, obj)`` still works, with a DeprecationWarning, and ``name``
    must equal ``obj.name``. Each object is checked against what its
    kind's contract requires (:data:`DECLARATIONS`); a broken rule is recorded in
    :attr:`problems` (every one, not just the first) and the host then fails the whole plugin.
    """

    def __init__(self, registry: Registry, spec: KindSpec, source: PluginSource) -> None:
        self._registry = registry
        self._spec = spec
        self._source = source
        self.problems: list[ContractViolation] = []
        self.attempted: list[str] = []  # every name given to add, registered or not

    @property
    def kind(self) -> str:
        return self._spec.kind

    def add(self, obj: Any, deprecated_obj: Any = _NOT_GIVEN, *, description: str | None = None) -> None:
        """Register ``obj`` (a subclass of the kind's base class, or an instance of it) under its
        ``name`` attribute; ``description`` replaces its docstring's first paragraph.

        ``add(name, obj)`` (deprecated) registers ``obj`` and checks that ``name`` is its name."""
        if deprecated_obj is _NOT_GIVEN:
            name, explicit = getattr(obj, "name", None), False
        else:
            warnings.warn(f"registry.add({obj!r}, {getattr(deprecated_obj, '__name__', 'obj')}): pass the class "
                          "alone; its name attribute names it", DeprecationWarning, stacklevel=2)
            name, obj, explicit = obj, deprecated_obj, True
        if isinstance(name, str):
            self.attempted.append(name)
        found = self._violations(name, obj, explicit)
        if found:
            self.problems += found
            return
        try:
            self._registry.add(Entry(self._spec.kind, name, obj, self._source, description or first_doc_line(obj)))
        except DuplicateNameError:
            self.problems.append(self._violation(
                "unique-name", f"{self._what(name, obj)} is registered twice by this plugin; expected one add per name"))

    def unavailable(self, name: str, reason: str) -> None:
        """Note something this plugin could provide but not here (a missing extra, say):
        it is not registered, and ``benchtool list --all`` shows the reason."""
        self._registry.unavailable.append((self._spec.kind, name, self._source, reason))

    def _violation(self, rule: str, detail: str) -> ContractViolation:
        return ContractViolation(self._source.name, rule, detail)

    def _what(self, name: Any, obj: Any) -> str:
        """``attack 'pgd' (pkg.module.PGD)``: the kind, the name and where the object is defined."""
        cls = obj if inspect.isclass(obj) else type(obj)
        where = f"{cls.__module__}.{cls.__qualname__}" + ("" if inspect.isclass(obj) else " instance")
        label = f" {name!r}" if isinstance(name, str) and name else ""
        return f"{self._spec.fixture.replace('_', ' ')}{label} ({where})"

    def _violations(self, name: Any, obj: Any, explicit: bool) -> list[ContractViolation]:
        """Every rule ``obj`` breaks as this kind's ``name``: derived from the base class,
        concrete, a valid ``name`` that is the registered one, the kind's declarations."""
        base = self._spec.base_class()
        what = self._what(name, obj)
        if not (issubclass(obj, base) if inspect.isclass(obj) else isinstance(obj, base)):
            got = obj.__qualname__ if inspect.isclass(obj) else f"{type(obj).__qualname__} instance"
            label = f" {name!r}" if isinstance(name, str) and name else ""
            return [self._violation(
                "derives-from-base", f"{self._spec.fixture.replace('_', ' ')}{label} is {got}; "
                                     f"expected a subclass or instance of {base.__module__}.{base.__qualname__}")]
        found = []
        if inspect.isclass(obj) and inspect.isabstract(obj):
            missing = sorted(getattr(obj, "__abstractmethods__", ()))
            found.append(self._violation("implements-abstract", f"{what} does not implement {missing}"))
        declared = getattr(obj, "name", None)
        if not _valid_name(declared):
            found.append(self._violation(
                "declares-name", f"{what} declares name = {declared!r}; expected a class attribute name = "
                                 "'...' (a non-empty string without spaces at its ends or '[')"))
        elif explicit and name != declared:
            cls = obj if inspect.isclass(obj) else type(obj)
            found.append(self._violation(
                "name-matches", f"{what} is registered as {name!r} but declares name = {declared!r}; expected "
                                f"the same name (registry.add({cls.__name__}) takes it from the class)"))
        for declaration in DECLARATIONS.get(self._spec.kind, ()):
            problem = declaration.check(obj)
            if problem:
                found.append(self._violation(declaration.rule, f"{what} {problem}"))
        return found


def _valid_name(name: Any) -> bool:
    return isinstance(name, str) and bool(name) and name == name.strip() and "[" not in name


# --- what each kind's contract requires an object to declare (checked at registration) ----


@dataclass(frozen=True)
class Declaration:
    """One rule on a class attribute: ``check(obj)`` says what is wrong and what was expected
    (``"declares no norm; expected ..."``), or returns None."""

    rule: str
    check: Callable[[Any], str | None]


_MISSING: Any = object()


def _check_choice(attr: str, literal: str) -> Callable[[Any], str | None]:
    """The check that ``attr`` is declared as one of the values of the Literal type
    ``benchtool.contracts.attack.<literal>``."""

    def check(obj: Any) -> str | None:
        from benchtool.contracts import attack

        valid = get_args(getattr(attack, literal))
        value = getattr(obj, attr, _MISSING)
        if value is _MISSING:
            return f"declares no {attr}; expected {attr} = one of {', '.join(map(repr, valid))}"
        return None if value in valid else f"declares {attr} = {value!r}; expected one of {', '.join(map(repr, valid))}"

    return check


def _check_bool(attr: str) -> Callable[[Any], str | None]:
    def check(obj: Any) -> str | None:
        value = getattr(obj, attr, _MISSING)
        return None if isinstance(value, bool) else f"declares {attr} = {value!r}; expected True or False"

    return check


def _check_tasks(obj: Any) -> str | None:
    from benchtool.contracts.data import Task

    valid = set(get_args(Task))
    tasks = getattr(obj, "tasks", _MISSING)
    ok = isinstance(tasks, (set, frozenset, tuple, list)) and tasks and set(tasks) <= valid
    return None if ok else f"declares tasks = {tasks!r}; expected a non-empty set of {sorted(valid)}"


def _check_defaults(obj: Any) -> str | None:
    defaults = getattr(obj, "defaults", {})
    if not isinstance(defaults, dict) or not all(isinstance(k, str) for k in defaults):
        return f"declares defaults = {defaults!r}; expected a dict of hyper-parameter names to values"
    return None


def _check_budget_overrides(obj: Any) -> str | None:
    from benchtool.config import BUDGETS

    overrides = getattr(obj, "budget_overrides", {})
    defaults = getattr(obj, "defaults", {})
    if not isinstance(overrides, dict) or not isinstance(defaults, dict):
        return f"declares budget_overrides = {overrides!r}; expected a dict of budget to hyper-parameters"
    for budget, values in overrides.items():
        if budget not in BUDGETS:
            return f"declares budget_overrides[{budget!r}]; expected budgets among {list(BUDGETS)}"
        unknown = sorted(set(values) - set(defaults)) if isinstance(values, dict) else values
        if unknown:
            return (f"declares budget_overrides[{budget!r}] = {values!r}, which sets undeclared hyper-parameter(s) "
                    f"{unknown}; expected names from defaults {sorted(defaults)}")
    return None


def _check_domain(obj: Any) -> str | None:
    domain = getattr(obj, "domain", _MISSING)
    if domain is _MISSING:
        return "declares no domain; expected domain = ((low, high), ...), one finite interval per input dimension"
    try:
        ok = len(domain) > 0 and all(
            len(box) == 2 and math.isfinite(box[0]) and math.isfinite(box[1]) and box[0] < box[1] for box in domain)
    except TypeError:
        ok = False
    return None if ok else f"declares domain = {domain!r}; expected ((low, high), ...) with finite low < high"


DECLARATIONS: dict[str, tuple[Declaration, ...]] = {
    "attacks": (
        Declaration("declares-norm", _check_choice("norm", "Norm")),
        Declaration("declares-threat-model", _check_choice("threat_model", "ThreatModel")),
        Declaration("declares-needs-gradients", _check_bool("needs_gradients")),
        Declaration("declares-supports-targeted", _check_bool("supports_targeted")),
        Declaration("declares-defaults", _check_defaults),
        Declaration("declares-budget-overrides", _check_budget_overrides),
    ),
    "estimators": (Declaration("declares-tasks", _check_tasks), Declaration("declares-defaults", _check_defaults)),
    "models": (Declaration("declares-tasks", _check_tasks),),
    "strategies": (Declaration("declares-defaults", _check_defaults),),
    "loss_weightings": (Declaration("declares-defaults", _check_defaults),
                        Declaration("declares-budget-overrides", _check_budget_overrides)),
    "target_functions": (Declaration("declares-domain", _check_domain), Declaration("declares-defaults", _check_defaults)),
}
