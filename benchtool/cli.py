"""``benchtool run | list | check`` (and the commands other modules add).

Every command validates its input first: a bad value prints one line naming the value
and the valid choices, and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchtool import __version__
from benchtool.config import BUDGETS, check_budget, resolve_device
from benchtool.errors import BenchtoolError, UsageError, choices_error
from benchtool.registry import KINDS, resolve_kind
from benchtool.tables import format_table

EXIT_USAGE = 2
PYTEST_USAGE_ERROR = 4


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace, list[str]], int]
    passthrough: bool = False  # unknown arguments go to pytest


COMMANDS: dict[str, Command] = {}
# modules that add commands with @command (imported when the CLI starts)
COMMAND_MODULES: tuple[str, ...] = ("benchtool.store.commands", "benchtool.report.commands", "benchtool.benchmarking")


def command(name: str, help: str, *, passthrough: bool = False):
    """Register a sub-command: decorates ``handler(args, extra) -> exit code``; the
    decorated function's ``configure`` attribute adds its arguments."""

    def decorate(configure: Callable[[argparse.ArgumentParser], None]):
        def bind(handler: Callable[[argparse.Namespace, list[str]], int]):
            COMMANDS[name] = Command(name, help, configure, handler, passthrough)
            return handler

        return bind

    return decorate


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
        base = name.split("::", 1)[0]
        if Path(base).exists():
            paths.append(name)
        elif name in valid:
            paths.append(str(suites_dir() / f"test_{name}.py"))
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


def forwarded_options(args: argparse.Namespace) -> list[str]:
    """``--json``, ``-p`` and ``-n`` as pytest options (for a run and for a resume)."""
    argv = ["--bt-json", str(Path(args.json).resolve())] if args.json else []
    for plugin in args.plugin:
        argv += ["-p", plugin]
    if args.numprocesses is not None:
        argv += ["-n", check_numprocesses(args.numprocesses)]
    return argv


def check_numprocesses(value: str) -> str:
    """``-n``: a worker count (0 = no workers) or ``auto``; needs pytest-xdist."""
    if not (value.isdigit() or value in ("auto", "logical")):
        raise UsageError(f"invalid -n {value!r}; expected a number of worker processes (0, 1, 2, ...) or auto")
    if importlib.util.find_spec("xdist") is None:
        raise UsageError("-n needs pytest-xdist, which is not installed here; install it with: pip install pytest-xdist")
    return value


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
                             "cells sharing a trained model stay on one worker; 'auto' = one per CPU")
    parser.add_argument("--store", metavar="PATH",
                        help="results database (default: $BENCHTOOL_STORE or .benchtool/results.db)")
    parser.add_argument("--resume", metavar="RUN_ID",
                        help="re-run a stored run's command line, running only the cases it has not finished")


@command("run", "run the benchmark suites (any other option goes to pytest: -k, -x, --lf, ...)",
         passthrough=True)(_configure_run)
def run(args: argparse.Namespace, extra: list[str]) -> int:
    import pytest

    resolve_device(args.device)
    check_budget(args.budget)
    if args.resume:
        from benchtool.store.commands import resume_pytest_args

        argv = resume_pytest_args(args, extra)
    else:
        argv = pytest_args(args, extra)
    code = int(pytest.main(argv))
    return EXIT_USAGE if code == PYTEST_USAGE_ERROR else code


# --- list -------------------------------------------------------------------------------


def _configure_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?", help="one of: " + ", ".join(KINDS))
    parser.add_argument("--all", action="store_true",
                        help="also show plugins that failed to load, are blocked or unavailable here")
    parser.add_argument("-p", "--plugin", action="append", default=[], metavar="MODULE",
                        help="load a local plugin module; -p no:NAME blocks a plugin")


def load_host_from_args(plugin_args: Sequence[str]):
    from benchtool.host import load_host

    blocked = [p[3:] for p in plugin_args if p.startswith("no:")]
    modules = [p for p in plugin_args if not p.startswith("no:")]
    return load_host(modules=modules, blocked=blocked)


@command("list", "list every plugin: kind, name, plugin module, distribution, version")(_configure_list)
def list_plugins(args: argparse.Namespace, extra: list[str]) -> int:
    kinds = [resolve_kind(args.kind).kind] if args.kind else list(KINDS)
    host = load_host_from_args(args.plugin)
    rows = [
        [e.kind, e.name, e.source.name, e.source.distribution, e.source.version, e.description]
        for kind in kinds for e in host.entries(kind)
    ]
    for line in format_table(["kind", "name", "plugin", "distribution", "version", "description"], rows):
        print(line)
    if args.all:
        for kind, name, source, reason in host.registry.unavailable:
            if kind in kinds:
                print(f"unavailable: {kind} {name!r} from plugin {source.name!r} ({source.distribution}): {reason}")
        for failure in host.failures:
            print(f"failed: {failure}")
        for name in host.blocked:
            print(f"blocked: {name}")
    elif host.failures:
        print(f"({len(host.failures)} plugin(s) failed to load; see benchtool list --all)", file=sys.stderr)
    return 0


# --- check ------------------------------------------------------------------------------


def _configure_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="MODULE_OR_CLASS",
                        help="pkg.module:Class, pkg.module.Class, or a plugin module (checks what it registers)")


def resolve_check_targets(target: str) -> list[object]:
    """The plugin classes named by ``target``."""
    from benchtool.host import load_host

    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        module_name, _, attr = target.rpartition(".")
        try:
            module = importlib.import_module(module_name) if module_name else None
        except ModuleNotFoundError:
            module = None
        if module is None:
            raise UsageError(f"cannot import {target!r}; expected pkg.module, pkg.module:Class or pkg.module.Class")
    if attr:
        if not hasattr(module, attr):
            raise UsageError(f"module {module_name!r} has no attribute {attr!r}")
        return [getattr(module, attr)]
    host = load_host(modules=[module_name], use_entry_points=False)
    targets = [e.obj for e in host.registry.all_entries()]
    if not targets:
        raise UsageError(f"module {module_name!r} registers no plugin through benchtool hooks")
    return targets


@command("check", "run the conformance checks on a plugin class or module")(_configure_check)
def check(args: argparse.Namespace, extra: list[str]) -> int:
    from benchtool.testing import run_checks

    failed = 0
    for target in resolve_check_targets(args.target):
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


def build_parser() -> argparse.ArgumentParser:
    for module in COMMAND_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    parser = argparse.ArgumentParser(prog="benchtool", description="Benchmark the known limits of deep learning.")
    parser.add_argument("--version", action="version", version=f"benchtool {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS.values():
        cmd.configure(sub.add_parser(cmd.name, help=cmd.help, description=cmd.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    forwarded: list[str] = []
    if "--" in argv:
        index = argv.index("--")
        argv, forwarded = argv[:index], argv[index + 1:]
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    cmd = COMMANDS[args.command]
    if unknown and not cmd.passthrough:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return cmd.handler(args, unknown + forwarded)
    except BenchtoolError as exc:
        print(f"benchtool {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    # run the package's module, not this __main__ copy: @command modules register into benchtool.cli
    from benchtool.cli import main as package_main

    raise SystemExit(package_main())
