"""Errors the host raises: each names the plugin and the rule it broke."""

from __future__ import annotations


class BenchtoolError(Exception):
    """Base class of every error benchtool raises on purpose."""


class UsageError(BenchtoolError):
    """A bad value given by the user (option, name, path): the CLI exits 2 with it."""


class PluginError(BenchtoolError):
    """A plugin could not be loaded or registered."""


class DuplicateNameError(PluginError):
    """Two plugins registered one name: fatal at start, the message names both."""


class ContractViolation(BenchtoolError):
    """A plugin broke a rule of its contract; the harness fails that plugin's cell."""

    def __init__(self, plugin: str, rule: str, detail: str) -> None:
        self.plugin = plugin
        self.rule = rule
        self.detail = detail
        super().__init__(f"plugin {plugin!r} broke rule {rule!r}: {detail}")


def choices_error(what: str, bad: object, valid: list[str] | tuple[str, ...]) -> UsageError:
    """The one-line error for an unknown name: says the bad value and the valid ones."""
    listed = ", ".join(valid) if valid else "(none registered)"
    return UsageError(f"unknown {what} {bad!r}; expected one of: {listed}")
