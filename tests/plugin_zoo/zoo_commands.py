"""Third-party sub-commands: ``benchtool hello NAME`` from an installed plugin, one whose
name another plugin (``clashing_commands``) or the CLI (``run_command``) has, one whose
registration crashes (``crashing_commands``)."""

from __future__ import annotations

import argparse

from benchtool import hookimpl
from benchtool.commands import Commands


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("who", help="whom to greet")


def hello(args: argparse.Namespace, extra: list[str]) -> int:
    print(f"hello {args.who}")
    return 0


@hookimpl
def benchtool_register_commands(commands: Commands) -> None:
    commands.add("hello", "greet someone (a third-party command)", hello, _configure)


class ClashingCommands:
    """Registers ``hello`` again."""

    @hookimpl
    def benchtool_register_commands(self, commands: Commands) -> None:
        commands.add("hello", "greet again", hello, _configure)


class CrashingCommands:
    @hookimpl
    def benchtool_register_commands(self, commands: Commands) -> None:
        raise RuntimeError("commands exploded")


class RunCommand:
    """Takes ``run``, the CLI's own command."""

    @hookimpl
    def benchtool_register_commands(self, commands: Commands) -> None:
        commands.add("run", "run something else", hello, _configure)


clashing_commands = ClashingCommands()
run_command = RunCommand()
crashing_commands = CrashingCommands()
