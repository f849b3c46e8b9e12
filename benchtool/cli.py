"""``benchtool run | list | check`` and the sub-commands plugins add through the hook
``benchtool_register_commands`` (the built-in ``runs``, ``show``, ``compare``, ``report``,
``bench-compare`` among them).

Every command validates its input first: a bad value prints one line naming the value
and the valid choices, and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from benchtool import __version__
from benchtool.commands import Commands, forwarded_options, store_option
from benchtool.config import BUDGETS, check_budget, check_seed, resolve_device
from benchtool.errors import BenchtoolError, UsageError, choices_error
from benchtool.host import PluginFailure, load_host, parse_plugin_args, prepare_local_plugins
from benchtool.registry import KIND_ALIASES, KINDS, resolve_kind
from benchtool.results import check_writable
from benchtool.tables import format_table
from benchtool.workers import default_workers

EXIT_USAGE = 2
EXECUTORS = "executors"  # listed beside the registry's kinds: pytest plugins register them
PYTEST_USAGE_ERROR = 4


# --- suites ---------------------------------------------------------------------------


def suites_dir() -> Path:
    """Where the bundled suites are (works for editable and regular installs)."""
    spec = importlib.util.find_spec("benchtool_suites")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("the bundled suites (package benchtool_suites) are not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def suite_names() -> list[str]:
    return sorted(p.stem.removeprefix("test_") for p in suites_dir().glob("test_*.py"))


def suite_paths(names: Sequence[str]) -> list[str]:
    """Suite names (``robustness``) or paths/node ids as given."""
    if not names:
        return [str(suites_dir())]
    valid = suite_names()
    paths = []
    for name in names:
        if name in valid:  # a suite name wins over a folder of that name in the working directory
            paths.append(str(suites_dir() / f"test_{name}.py"))
        elif Path(name.split("::", 1)[0]).exists():
            paths.append(name)
        else:
            raise choices_error("suite", name, valid)
    return paths


def pytest_args(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """The pytest command line that runs the selected suites with these options."""
    cwd = Path.cwd()
    argv = [
        *suite_paths(args.suites),
        "--import-mode=importlib",
        "-o", f"cache_dir={cwd / '.benchtool' / 'pytest-cache'}",
        "--rootdir", str(suites_dir().parent),
        "--bt-device", args.device,
        "--bt-budget", args.budget,
        "--bt-seed", str(args.seed),
    ]
    argv += forwarded_options(args)
    if args.store:
        argv += ["--bt-store", str(Path(args.store).resolve())]
    return argv + extra


def _configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suites", nargs="*", metavar="SUITE",
                        help="suite names (e.g. robustness) or paths; default: every bundled suite")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    parser.add_argument("--budget", default="default", help=f"{' | '.join(BUDGETS)} (default: default)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--json", metavar="PATH", help="write every recorded figure as a JSON list")
    parser.add_argument("-p", "--plugin", action="append", default=[], metavar="MODULE",
                        help="load a local plugin module; -p no:NAME blocks a plugin")
    parser.add_argument("-n", "--numprocesses", metavar="N", default=None,
                        help="spread the cells over N worker processes (pytest-xdist), one GPU each; "
                             "cells sharing a trained model stay on one worker; 'auto' = one per CPU; "
                             "0 = one process. Default: on a CPU one per core, up to 4 and one per GB of free memory "
                             "($BENCHTOOL_WORKERS sets it); on a GPU one process")
    store_option(parser)
    parser.add_argument("--resume", metavar="RUN_ID",
                        help="re-run a stored run's command line, running only the cases it has not finished")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    """pytest over the suites, in a supervised child process (:func:`benchtool.supervisor.supervise`):
    a cell that ends the process (``os._exit``, a segfault, a hung plugin call) is named, and
    every case finished before it stays stored."""
    from benchtool.supervisor import supervise

    def run_pytest() -> int:
        import pytest

        try:  # the device is resolved in the child: CUDA must not be initialized before the fork
            resolve_device(args.device)
            check_budget(args.budget)
            check_seed(args.seed, "--seed")
            if args.json:
                check_writable(args.json, "--json")
            prepare_local_plugins(args.plugin)  # -p modules import from the working directory
            if args.resume:
                from benchtool.store.commands import resume_pytest_args

                argv = resume_pytest_args(args, extra)
            else:
                argv = pytest_args(args, extra)
            argv += default_workers(argv)
        except BenchtoolError as exc:  # as main() prints it
            print(f"benchtool run: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        code = int(pytest.main(argv))
        return EXIT_USAGE if code == PYTEST_USAGE_ERROR else code

    return supervise(run_pytest, command="run")


# --- list -------------------------------------------------------------------------------


def _configure_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?", help="one of: " + ", ".join([*KINDS, EXECUTORS]))
    parser.add_argument("--all", action="store_true",
                        help="also show plugins that failed to load, are blocked or unavailable here")
    parser.add_argument("-p", "--plugin", action="append", default=[], metavar="MODULE",
                        help="load a local plugin module; -p no:NAME blocks a plugin")


def load_host_from_args(plugin_args: Sequence[str]):
    """The host for a command's ``-p`` values (``MODULE`` loads, ``no:NAME`` blocks)."""
    plugins = prepare_local_plugins(plugin_args)
    return load_host(modules=plugins.modules, blocked=plugins.blocked)


def list_plugins(args: argparse.Namespace, extra: list[str]) -> int:
    from benchtool.executors.registry import discover_executors

    if args.kind is not None and args.kind != EXECUTORS and KIND_ALIASES.get(args.kind, args.kind) not in KINDS:
        raise choices_error("plugin kind", args.kind, [*KINDS, EXECUTORS])
    kinds = list(KINDS) if args.kind is None else [] if args.kind == EXECUTORS else [resolve_kind(args.kind).kind]
    host = load_host_from_args(args.plugin)
    rows = [
        [e.kind, e.name, e.source.name, e.source.distribution, e.source.version, e.description]
        for kind in kinds for e in host.entries(kind)
    ]
    warnings = list(host.warnings)
    if args.kind in (None, EXECUTORS):  # -p modules may be pytest plugins that add executors
        executors, executor_warnings = discover_executors(parse_plugin_args(args.plugin).modules)
        rows += [[EXECUTORS, e.executor.name, e.plugin, e.distribution, e.version, e.description] for e in executors]
        warnings += executor_warnings
    for warning in warnings:
        print(f"benchtool list: warning: {warning}", file=sys.stderr)
    for line in format_table(["kind", "name", "plugin", "distribution", "version", "description"], rows):
        print(line)
    if args.all:
        for kind, name, source, reason in host.registry.unavailable:
            if kind in kinds:
                print(f"unavailable: {kind} {name!r} from plugin {source.name!r} ({source.distribution}): {reason}")
        for failure in host.failures:
            print(f"failed: {failure}")
        for name in host.blocked:
            print(f"blocked: {name} ({host.blocked_by[name]})")
    elif host.failures:
        names = ", ".join(dict.fromkeys(f.name for f in host.failures))
        print(f"benchtool list: {len(host.failures)} problem(s) kept plugin(s) {names} from loading; "
              "see benchtool list --all", file=sys.stderr)
    return 0


# --- check ------------------------------------------------------------------------------


def _configure_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="MODULE_OR_CLASS",
                        help="pkg.module:Class, pkg.module.Class, or a plugin module (checks what it registers)")


def _import_for_check(module_name: str, target: str) -> tuple[object | None, str]:
    """(the module, "") or (None, the missing module's name) when it does not exist; an
    error inside it (a missing dependency, a SyntaxError) is a UsageError showing that error."""
    from benchtool.host import describe_exception

    try:
        return importlib.import_module(module_name), ""
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            return None, exc.name
        raise UsageError(f"cannot import {target!r}: {describe_exception(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - the module's own error, shown as it is
        raise UsageError(f"cannot import {target!r}: {describe_exception(exc)}") from None


def resolve_check_targets(target: str) -> tuple[list[object], list]:
    """The plugin classes named by ``target``, and for a plugin module the
    :class:`~benchtool.host.PluginFailure` s of its registration (modules are looked up in the
    current directory first, as with ``python -m``)."""
    from benchtool.host import load_host, local_modules_importable

    local_modules_importable()
    module_name, colon, attr = target.partition(":")
    module, missing = _import_for_check(module_name, target) if module_name else (None, target)
    if module is None and not colon and "." in target:
        module_name, _, attr = target.rpartition(".")
        module, missing = _import_for_check(module_name, target)
    if module is None:
        raise UsageError(f"cannot import {target!r}: no module named {missing!r} in the current directory or on "
                         "sys.path; expected pkg.module, pkg.module:Class or pkg.module.Class")
    if attr:
        if not hasattr(module, attr):
            raise UsageError(f"module {module_name!r} has no attribute {attr!r}; expected a plugin class defined in it")
        return [getattr(module, attr)], []
    host = load_host(modules=[module_name], use_entry_points=False)
    targets = [e.obj for e in host.registry.all_entries()]
    if not targets and not host.failures:
        raise UsageError(f"module {module_name!r} registers no plugin through benchtool hooks; expected "
                         "@hookimpl functions such as benchtool_register_attacks(registry)")
    return targets, host.failures


def check(args: argparse.Namespace, extra: list[str]) -> int:
    from benchtool.testing import run_checks

    targets, failures = resolve_check_targets(args.target)
    for failure in failures:
        print(f"FAIL {failure.name}::registration  {failure.summary}")
    failed = len(failures)
    for target in targets:
        label = getattr(target, "name", None) or getattr(target, "__qualname__", repr(target))
        try:
            results = run_checks(target)
        except TypeError as exc:
            raise UsageError(str(exc)) from None
        for result in results:
            status = "PASS" if result.passed else "FAIL"
            print(f"{status} {label}::{result.check}" + (f"  {result.message}" if result.message else ""))
            failed += not result.passed
    print(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0


# --- entry point ------------------------------------------------------------------------


def cli_commands() -> Commands:
    """The CLI's own sub-commands; plugins add theirs through ``benchtool_register_commands``."""
    commands = Commands()
    commands.add("run", "run the benchmark suites (any other option goes to pytest: -k, -x, --lf, ...)",
                 run, _configure_run, passthrough=True)
    commands.add("list", "list every plugin: kind, name, plugin module, distribution, version",
                 list_plugins, _configure_list)
    commands.add("check", "run the conformance checks on a plugin class or module", check, _configure_check)
    return commands


def load_commands() -> tuple[Commands, list[PluginFailure]]:
    """Every sub-command: the CLI's own, then each plugin's (``BENCHTOOL_DISABLE_PLUGINS`` blocks
    a plugin's); and the failures of the plugins that register commands (a crash, a name taken)."""
    host = load_host(commands=cli_commands())
    return host.commands, [f for f in host.failures if f.name in host.command_plugins]


def build_parser(commands: Commands | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchtool", description="Benchmark the known limits of deep learning.")
    parser.add_argument("--version", action="version", version=f"benchtool {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in commands if commands is not None else load_commands()[0]:
        cmd.configure(sub.add_parser(cmd.name, help=cmd.help, description=cmd.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    forwarded: list[str] = []
    if "--" in argv:
        index = argv.index("--")
        argv, forwarded = argv[:index], argv[index + 1:]
    commands, failures = load_commands()
    for failure in failures:  # that plugin's commands are missing; every other command works
        print(f"benchtool: warning: {failure}", file=sys.stderr)
    parser = build_parser(commands)
    args, unknown = parser.parse_known_args(argv)
    cmd = commands.get(args.command)
    assert cmd is not None  # argparse accepts only the commands it was given
    if unknown and not cmd.passthrough:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        code = cmd.handler(args, unknown + forwarded)
        sys.stdout.flush()  # a closed pipe shows here, inside the try
        return code
    except BenchtoolError as exc:
        print(f"benchtool {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `benchtool runs | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
        os.close(devnull)
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
