"""The host: discovers plugin modules through entry points, registers what they provide.

Discovery follows pytest: one entry point per plugin module in group ``benchtool``;
``-p MODULE`` adds a local module (importable from the current directory, as with
``python -m pytest``); ``-p no:NAME`` or ``BENCHTOOL_DISABLE_PLUGINS=a,b`` blocks one by name.

One plugin's mistake is that plugin's failure: a module that fails to import, implements a
hook benchtool does not have, registers something that breaks its contract, or a name another
plugin registered first is reported as one line (its entry-point name, its distribution, the
error, how to block it), registers nothing, and every other plugin still loads.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import platform
import re
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

import pluggy

from benchtool import __version__, hookspecs
from benchtool.commands import Commands
from benchtool.errors import UsageError, choices_error, did_you_mean
from benchtool.registry import KINDS, Entry, PluginSource, Registrar, Registry, resolve_kind

if TYPE_CHECKING:
    from benchtool.metrics.catalog import MetricSpec

ENTRY_POINT_GROUP = "benchtool"
DISABLE_ENV = "BENCHTOOL_DISABLE_PLUGINS"
LOCAL_DISTRIBUTION = "local"  # the distribution of a module loaded with -p
SOURCE_SCHEME = re.compile(r"[a-z][a-z0-9]+")  # --store SCHEME:PATH (two letters or more: not a drive)
HOOK_NAMES: tuple[str, ...] = tuple(
    sorted(name for name, obj in vars(hookspecs).items() if hasattr(obj, f"{hookspecs.PROJECT}_spec"))
)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin module that could not be imported or registered: it registers nothing."""

    name: str  # entry-point name, or module name for -p
    distribution: str
    stage: str  # "import" | "register"
    error: str  # one line: what is wrong and what was expected
    version: str = ""
    rule: str = ""  # the contract rule it broke, for registration checks

    @property
    def origin(self) -> str:
        if self.distribution == LOCAL_DISTRIBUTION:
            return "module given with -p"
        return f"distribution {self.distribution} {self.version}".strip()

    @property
    def summary(self) -> str:
        """``plugin 'x' broke rule 'r': ...`` or ``plugin 'x' failed to import: ...``."""
        head = f"plugin {self.name!r} broke rule {self.rule!r}" if self.rule else f"plugin {self.name!r} failed to {self.stage}"
        return f"{head}: {self.error}"

    def __str__(self) -> str:
        return f"{self.summary} [{self.origin}; not loaded, block it with -p no:{self.name}]"


@dataclass(frozen=True)
class PluginArgs:
    """The ``-p`` values of one command line: modules to load, plugin names to block."""

    modules: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()


def parse_plugin_args(values: Iterable[str]) -> PluginArgs:
    """``-p MODULE`` and ``-p no:NAME`` values (the one parser, for the CLI and for pytest);
    a malformed value is a UsageError."""
    modules: list[str] = []
    blocked: list[str] = []
    for value in values:
        if value.startswith("no:"):
            name = value[3:].strip()
            if not name:
                raise UsageError(f"-p {value!r} names no plugin; expected -p no:NAME, e.g. -p no:fgsm")
            blocked.append(name)
        elif not all(part.isidentifier() for part in value.split(".")):
            raise UsageError(
                f"-p {value!r} is not a module name; expected a dotted module name importable from the current "
                "directory, e.g. -p bt_sign_noise for ./bt_sign_noise.py"
            )
        else:
            modules.append(value)
    return PluginArgs(tuple(dict.fromkeys(modules)), tuple(dict.fromkeys(blocked)))


def local_modules_importable() -> None:
    """Put the current directory first on ``sys.path``, as ``python -m`` does, so ``-p MODULE``
    finds ``./MODULE.py`` from the ``benchtool`` console script too."""
    cwd = os.getcwd()
    if not ({"", ".", cwd} & set(sys.path)):
        sys.path.insert(0, cwd)


def prepare_local_plugins(values: Iterable[str]) -> PluginArgs:
    """Parse ``-p`` values and, when they name modules, make the current directory importable:
    call it before anything imports a ``-p`` module (``pytest.main`` does, first thing)."""
    args = parse_plugin_args(values)
    if args.modules:
        local_modules_importable()
    return args


def blocked_from_env() -> list[str]:
    return [name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",") if name.strip()]


def describe_exception(exc: BaseException) -> str:
    """One line: ``Type: message (file:line)`` where the innermost frame outside importlib
    raised it; a SyntaxError as ``file:line: SyntaxError: message``."""
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}: " if exc.filename else ""
        return f"{where}{type(exc).__name__}: {exc.msg}"
    lines = traceback.format_exception_only(type(exc), exc)
    text = " ".join(line.strip() for line in lines if line.strip()) or repr(exc)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
    return f"{text} ({frames[-1].filename}:{frames[-1].lineno})" if frames else text


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


@dataclass
class Host:
    """Loaded plugins and their registry."""

    pm: pluggy.PluginManager
    registry: Registry
    sources: dict[str, PluginSource] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # names of the plugins blocked
    blocked_by: dict[str, str] = field(default_factory=dict)  # name -> "-p no:NAME" | "BENCHTOOL_DISABLE_PLUGINS"
    warnings: list[str] = field(default_factory=list)  # one line each: shown by `list` and the pytest header
    withdrawn: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> failed plugin
    commands: Commands = field(default_factory=Commands)  # the CLI's own, then every plugin's
    command_plugins: set[str] = field(default_factory=set)  # plugins implementing benchtool_register_commands
    result_sources: dict[str, tuple[str, Any]] = field(default_factory=dict)  # scheme -> (plugin, factory)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def entries(self, kind: str) -> list[Entry]:
        return self.registry.entries(kind)

    def failures_of(self, plugin: str) -> list[PluginFailure]:
        return [f for f in self.failures if f.name == plugin]

    def unknown_name_error(self, kind: str, name: str, where: str = "") -> UsageError:
        """Why ``name`` is not a registered ``kind``, in one line: its plugin is blocked, failed
        or unavailable here, or it is unknown (listing the valid names)."""
        spec = resolve_kind(kind)
        what = spec.fixture.replace("_", " ") + (f" in {where}" if where else "")
        if name in self.blocked_by:
            how = self.blocked_by[name]
            undo = f"drop {how}" if how.startswith("-p") else f"remove {name!r} from {how}"
            return UsageError(f"{what} {name!r} is blocked: plugin {name!r} was blocked with "
                              f"{how if how.startswith('-p') else f'{how}={name}'}; {undo} to run it")
        plugin = self.withdrawn.get((spec.kind, name)) or (name if self.failures_of(name) else None)
        if plugin is not None:
            return UsageError(f"{what} {name!r} is not loaded: {self.failures_of(plugin)[0]}")
        for other_kind, other, source, reason in self.registry.unavailable:
            if (other_kind, other) == (spec.kind, name):
                return UsageError(f"{what} {name!r} is unavailable here: {reason} (plugin {source.name!r})")
        return choices_error(what, name, self.registry.names(spec.kind))

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
            # figures depend on them (float sums): the run's torch threads, numba's thread pool
            "torch_threads": torch.get_num_threads(),
            "numba_threads": numba.config.NUMBA_NUM_THREADS,
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

    def _fail(self, source: PluginSource, stage: str, error: str, rule: str = "") -> None:
        self.failures.append(PluginFailure(source.name, source.distribution, stage, error, source.version, rule))


def load_host(
    modules: Iterable[str] = (),
    blocked: Iterable[str] = (),
    *,
    use_entry_points: bool = True,
    commands: Commands | None = None,
) -> Host:
    """Load every plugin: entry points (unless blocked), then ``modules`` given with -p.
    A blocked name that matches no plugin is a warning (``host.warnings``) listing the valid ones.
    ``commands``: the CLI's own sub-commands, which the plugins' commands join."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked_by = {name: f"-p no:{name}" for name in blocked}
    blocked_by.update({name: DISABLE_ENV for name in blocked_from_env() if name not in blocked_by})
    host = Host(pm=pm, registry=Registry(), blocked_by={}, commands=commands or Commands())
    for name in blocked_by:
        pm.set_blocked(name)
    declared: dict[str, PluginSource] = {}  # every plugin name there is, blocked or not
    module_plugin: dict[str, str] = {}  # module of an entry point -> its plugin name

    if use_entry_points:
        # benchtool's own plugins first, then the others by name: on a clash the newcomer fails
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=_load_order):
            source = PluginSource(ep.name, ep.value, ep.dist.name if ep.dist else "unknown",
                                  ep.dist.version if ep.dist else "unknown")
            if ep.name in declared:
                other = declared[ep.name]
                host._fail(source, "register", f"entry-point name {ep.name!r} is declared by {source.distribution} "
                           f"{source.version} and by {other.distribution} {other.version}; expected one plugin per "
                           "name (uninstall one of them)", rule="unique-plugin-name")
                continue
            declared[ep.name] = source
            module_plugin.setdefault(ep.value.partition(":")[0], ep.name)
            if ep.name in blocked_by:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import error is the plugin's fault
                host._fail(source, "import", describe_exception(exc))
                continue
            _register_plugin(host, plugin, source)

    modules = list(modules)
    if modules:
        local_modules_importable()
    for module_name in modules:
        if module_name in module_plugin:
            owner = declared[module_plugin[module_name]]
            state = ("loaded once" if owner.name in host.sources else
                     "blocked" if owner.name in blocked_by else "reported failed (benchtool list --all)")
            host.warnings.append(f"-p {module_name}: module {module_name!r} is installed as plugin {owner.name!r} "
                                 f"(distribution {owner.distribution} {owner.version}), which is {state}; -p ignored")
            continue
        if module_name in declared:
            continue
        declared[module_name] = source = PluginSource(module_name, module_name, LOCAL_DISTRIBUTION, "-")
        if module_name in blocked_by:
            continue
        _register_plugin(host, _import_local(module_name), source)

    host.blocked = sorted(name for name in blocked_by if name in declared)
    host.blocked_by = {name: blocked_by[name] for name in host.blocked}
    for name, how in blocked_by.items():
        if name not in declared:
            host.warnings.append(_unknown_block_warning(name, how, declared, module_plugin))
    _collect_registrations(host)
    return host


def _load_order(ep: Any) -> tuple[bool, str, str]:
    return (getattr(ep.dist, "name", None) != "benchtool", ep.name, ep.value)


def _import_local(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise UsageError(
                f"-p {module_name}: no module named {exc.name!r} in the current directory ({os.getcwd()}) or on "
                "sys.path; expected an importable module, e.g. -p bt_sign_noise for ./bt_sign_noise.py"
            ) from None
        raise UsageError(f"-p {module_name}: cannot import it: {describe_exception(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - the module's own error, shown as it is
        raise UsageError(f"-p {module_name}: cannot import it: {describe_exception(exc)}") from None


def _unknown_block_warning(name: str, how: str, declared: dict[str, PluginSource], module_plugin: dict[str, str]) -> str:
    given = f"-p no:{name}" if how.startswith("-p") else f"{DISABLE_ENV}={name}"
    by_dist = sorted(s.name for s in declared.values() if s.distribution == name)
    if name in module_plugin:
        hint = f"{name!r} is the module of plugin {module_plugin[name]!r}: block it with -p no:{module_plugin[name]}"
    elif by_dist:
        hint = f"{name!r} is a distribution: block its plugins by name ({', '.join(by_dist)})"
    else:
        hint = did_you_mean(name, list(declared))
    return (f"{given} matches no plugin, so nothing was blocked; expected a plugin name, one of: "
            f"{', '.join(sorted(declared)) or '(none)'}" + (f" ({hint})" if hint else ""))


# --- one plugin's hooks, then its registrations ------------------------------------------


def _hook_problems(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    """What is wrong with the hooks ``plugin`` implements, one line each: an unknown hook
    (with the closest real one), arguments the hook does not pass, a function named like a
    hook but not marked ``@hookimpl`` (benchtool would never call it)."""
    problems = []
    for attr in dir(plugin):
        try:
            function = getattr(plugin, attr)
        except Exception:  # noqa: BLE001 - a property that raises is no hook
            continue
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is None:
            if (attr.startswith(f"{hookspecs.PROJECT}_") and inspect.isfunction(function)
                    and getattr(function, "__module__", None) == getattr(plugin, "__name__", "")):
                if attr in HOOK_NAMES:
                    problems.append(f"function {attr!r} is not marked @hookimpl, so benchtool would never call it; "
                                    "expected it decorated with @benchtool.hookimpl")
                elif did_you_mean(attr, HOOK_NAMES):
                    problems.append(f"function {attr!r} is no hook and not marked @hookimpl; "
                                    f"{did_you_mean(attr, HOOK_NAMES)}")
            continue
        hook_name = opts.get("specname") or attr
        if hook_name not in HOOK_NAMES:
            if not opts.get("optionalhook"):
                hint = did_you_mean(hook_name, HOOK_NAMES) or f"expected one of: {', '.join(HOOK_NAMES)}"
                problems.append(f"unknown hook {hook_name!r}; {hint}")
            continue
        spec_args = list(inspect.signature(getattr(hookspecs, hook_name)).parameters)
        try:
            params = inspect.signature(function).parameters.values()
        except (TypeError, ValueError):
            continue
        extra = [p.name for p in params if p.default is p.empty and p.name not in spec_args
                 and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if extra:
            problems.append(f"hook {hook_name!r} takes argument(s) {extra} that benchtool does not pass; "
                            f"expected {hook_name}({', '.join(spec_args)}) or a subset of those arguments")
    return problems


def _register_plugin(host: Host, plugin: Any, source: PluginSource) -> None:
    problems = _hook_problems(host.pm, plugin)
    if not problems:
        try:
            host.pm.register(plugin, name=source.name)
        except ValueError as exc:  # pluggy: already registered (its message dumps every plugin)
            other = host.pm.get_name(plugin)
            problems = [f"the same plugin object is already registered as {other!r}" if other else _one_line(exc)[:300]]
        except pluggy.PluginValidationError as exc:
            problems = [_one_line(exc)]
    if problems:
        for problem in problems:
            host._fail(source, "register", problem)
        return
    host.sources[source.name] = source


def _collect_registrations(host: Host) -> None:
    """Each plugin in load order adds what it has into a registry of its own; it joins the
    shared registry only if every registration kept its contract and no name was taken
    before: otherwise the plugin fails as a whole (every problem reported) and is unloaded."""
    for name, source in list(host.sources.items()):
        plugin = host.pm.get_plugin(name)
        staged = Registry()
        problems: list[tuple[str, str]] = []  # (rule or "", detail)
        attempted: list[tuple[str, str]] = []  # (kind, name) of every add, kept or not
        for spec in KINDS.values():
            registrar = Registrar(staged, spec, source)
            _call_own(host, spec.hook, plugin, problems, registry=registrar)
            problems += [(v.rule, v.detail) for v in registrar.problems]
            attempted += [(spec.kind, n) for n in registrar.attempted]
        metrics = _plugin_metrics(host, plugin, problems)
        staged_commands = _staged_commands(host, plugin, name, problems)
        staged_sources = _staged_result_sources(host, plugin, problems)
        for entry in staged.all_entries():
            taken = host.registry.find(entry.kind, entry.name)
            if taken is not None:
                problems.append(("unique-name", f"{KINDS[entry.kind].fixture.replace('_', ' ')} name {entry.name!r} "
                                 f"is already registered by plugin {taken.source.name!r} "
                                 f"({_origin(taken.source)}); expected a name no other plugin registers"))
        if problems:
            for rule, detail in problems:
                host._fail(source, "register", detail, rule)
            for key in attempted:
                host.withdrawn.setdefault(key, name)
            host.pm.unregister(plugin)
            del host.sources[name]
            continue
        for entry in staged.all_entries():
            host.registry.add(entry)
        host.registry.unavailable += staged.unavailable
        if metrics:
            from benchtool.metrics.catalog import CATALOG

            for metric in metrics:
                CATALOG.register(metric, replace_existing=True)
        host.commands.merge(staged_commands)
        host.result_sources.update({scheme: (name, factory) for scheme, factory in staged_sources.items()})


def _own_impl(host: Host, hook: str, plugin: Any) -> Any:
    """``plugin``'s implementation of ``hook`` (pluggy allows one per plugin), or None."""
    return next((impl for impl in getattr(host.pm.hook, hook).get_hookimpls() if impl.plugin is plugin), None)


def _call_own(host: Host, hook: str, plugin: Any, problems: list[tuple[str, str]], **arguments: Any) -> bool:
    """Call ``plugin``'s implementation of registration hook ``hook``, if it has one, with the
    ``arguments`` it takes (as pluggy would); what it raises goes to ``problems``. Whether it has one."""
    impl = _own_impl(host, hook, plugin)
    if impl is None:
        return False
    try:
        impl.function(**{key: value for key, value in arguments.items() if key in impl.argnames})
    except Exception as exc:  # noqa: BLE001 - the plugin's own error (a metric name already taken, ...)
        problems.append(("", f"{hook} raised {describe_exception(exc)}"))
    return True


def _plugin_metrics(host: Host, plugin: Any, problems: list[tuple[str, str]]) -> list[MetricSpec]:
    """The metric specs ``plugin`` catalogues in its ``benchtool_register_metrics``, staged in a
    copy of the default catalog (so a name already taken there, by the built-ins or an earlier
    plugin, is its problem); the caller commits them with the plugin's other registrations."""
    if _own_impl(host, "benchtool_register_metrics", plugin) is None:
        return []
    from benchtool.metrics.catalog import CATALOG, MetricCatalog  # imported only for a plugin with metrics

    staged = MetricCatalog(CATALOG, CATALOG.families)
    _call_own(host, "benchtool_register_metrics", plugin, problems, catalog=staged)
    return [spec for spec in staged if CATALOG.get(spec.name) != spec]


def _origin(source: PluginSource) -> str:
    return "a module given with -p" if source.distribution == LOCAL_DISTRIBUTION else \
        f"distribution {source.distribution} {source.version}"


def _staged_result_sources(host: Host, plugin: Any, problems: list[tuple[str, str]]) -> dict[str, Any]:
    """The ``--store SCHEME:PATH`` readers ``plugin`` adds; a bad one, or a scheme an earlier
    plugin has, goes to ``problems``."""
    staged: dict[str, Any] = {}
    _call_own(host, "benchtool_register_result_sources", plugin, problems, sources=staged)
    for scheme, factory in staged.items():
        if not (isinstance(scheme, str) and SOURCE_SCHEME.fullmatch(scheme)) or not callable(factory):
            problems.append(("", f"result source {scheme!r}: {factory!r}; expected a lower-case scheme of two or "
                             "more letters and a callable that opens a path, e.g. sources['csv'] = CsvRuns"))
        elif scheme in host.result_sources:
            first = host.result_sources[scheme][0]
            problems.append(("unique-name", f"result source {scheme!r} is already registered by plugin {first!r} "
                             f"({_origin(host.sources[first])}); expected a scheme no other plugin registers"))
    return staged


def _staged_commands(host: Host, plugin: Any, name: str, problems: list[tuple[str, str]]) -> Commands:
    """The sub-commands ``plugin`` adds through ``benchtool_register_commands``, each one's
    arguments declared once on a scratch parser; a crash, or a name the CLI or an earlier
    plugin has, goes to ``problems``."""
    staged = Commands(name)
    if _call_own(host, "benchtool_register_commands", plugin, problems, commands=staged):
        host.command_plugins.add(name)
    for command in staged:
        try:
            command.configure(argparse.ArgumentParser(prog=f"benchtool {command.name}"))
        except Exception as exc:  # noqa: BLE001 - the plugin's own error
            problems.append(("", f"command {command.name!r}: declaring its arguments raised {describe_exception(exc)}"))
        taken = host.commands.get(command.name)
        if taken is not None:
            owner = (f"plugin {taken.plugin!r} ({_origin(host.sources[taken.plugin])})" if taken.plugin
                     else "the benchtool CLI itself")
            problems.append(("unique-command", f"command name {command.name!r} is already registered by {owner}; "
                             "expected a command name no other plugin registers"))
    return staged
