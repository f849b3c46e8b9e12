"""The CLI's sub-commands as a table that plugins add to through the hook
``benchtool_register_commands(commands)`` (datasette's ``register_commands``): the built-in
``runs``/``show``/``compare`` (plugin ``store``), ``report`` and ``bench-compare`` are plugins
like a third-party one, so :mod:`benchtool.cli` lists no command modules and none imports it.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from benchtool.errors import UsageError
from benchtool.workers import check_numprocesses

Configure = Callable[[argparse.ArgumentParser], None]
Handler = Callable[[argparse.Namespace, list[str]], int]
COMMAND_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``configure`` of a command that takes no arguments."""


@dataclass(frozen=True)
class Command:
    """One sub-command: ``configure`` adds its arguments, ``handler(args, extra)`` runs it."""

    name: str
    help: str
    handler: Handler
    configure: Configure = _no_arguments
    passthrough: bool = False  # unknown arguments go to the handler (``run``: to pytest)
    plugin: str = ""  # the plugin that registered it ("" for the CLI's own)


class Commands:
    """Sub-commands by name; what ``benchtool_register_commands(commands)`` receives."""

    def __init__(self, plugin: str = "") -> None:
        self.plugin = plugin
        self._commands: dict[str, Command] = {}

    def add(self, name: str, help: str, handler: Handler, configure: Configure = _no_arguments, *,
            passthrough: bool = False) -> None:
        """Add sub-command ``name``: ``configure(parser)`` declares its arguments,
        ``handler(args, extra) -> exit code`` runs it."""
        if not isinstance(name, str) or not COMMAND_NAME.fullmatch(name):
            raise UsageError(f"command name {name!r} is not valid; expected lower-case words joined by '-', "
                             "e.g. 'export-csv'")
        if not callable(handler) or not callable(configure):
            raise UsageError(f"command {name!r}: handler and configure must be callables, got "
                             f"{handler!r} and {configure!r}")
        if name in self._commands:
            raise UsageError(f"command {name!r} is added twice by {self.plugin or 'benchtool'}")
        self._commands[name] = Command(name, help, handler, configure, passthrough, self.plugin)

    def merge(self, other: Commands) -> None:
        """Add every command of ``other`` (names checked unique by the caller)."""
        self._commands.update(other._commands)

    def get(self, name: str) -> Command | None:
        return self._commands.get(name)

    def names(self) -> list[str]:
        return list(self._commands)

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def __contains__(self, name: object) -> bool:
        return name in self._commands


def forwarded_options(args: argparse.Namespace) -> list[str]:
    """``--json``, ``-p`` and ``-n`` as pytest options (for a run and for a resume)."""
    argv = ["--bt-json", str(Path(args.json).resolve())] if args.json else []
    for plugin in args.plugin:
        argv += ["-p", plugin]
    if args.numprocesses is not None:
        argv += ["-n", check_numprocesses(args.numprocesses)]
    return argv


def store_option(parser: argparse.ArgumentParser, *, reads: bool = False) -> None:
    """``--store PATH``: the results database a command writes, or (``reads``) the source of
    stored runs it reads (:func:`~benchtool.store.source.open_source`)."""
    from benchtool.store.db import READ_HELP, STORE_HELP

    parser.add_argument("--store", metavar="PATH", help=STORE_HELP + (READ_HELP if reads else ""))
