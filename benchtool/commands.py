"""The CLI's sub-commands as a registry, apart from :mod:`benchtool.cli` so the modules that
add commands (``benchtool.store.commands``, ``benchtool.report.commands``,
``benchtool.benchmarking``) never import the CLI back: ``cli`` imports them, they import this.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchtool.errors import UsageError


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace, list[str]], int]
    passthrough: bool = False  # unknown arguments go to pytest


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, *, passthrough: bool = False):
    """Register a sub-command: decorates ``handler(args, extra) -> exit code``; the
    decorated function's ``configure`` attribute adds its arguments."""

    def decorate(configure: Callable[[argparse.ArgumentParser], None]):
        def bind(handler: Callable[[argparse.Namespace, list[str]], int]):
            COMMANDS[name] = Command(name, help, configure, handler, passthrough)
            return handler

        return bind

    return decorate


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


def store_option(parser: argparse.ArgumentParser) -> None:
    """``--store PATH``: the results database a command writes or reads."""
    from benchtool.store.db import STORE_HELP

    parser.add_argument("--store", metavar="PATH", help=STORE_HELP)
