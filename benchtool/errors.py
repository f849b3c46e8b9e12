"""Errors the host raises: each names the plugin and the rule it broke."""

from __future__ import annotations


class BenchtoolError(Exception):
    """Base class of every error benchtool raises on purpose."""


class UsageError(BenchtoolError):
    """A bad value given by the user (option, name, path): the CLI exits 2 with it."""


class PluginError(BenchtoolError):
    """A plugin could not be loaded or registered."""


class DuplicateNameError(PluginError):
    """A name registered twice in one :class:`~benchtool.registry.Registry`; the host reports it
    as the second plugin's failure (rule ``unique-name``), naming both distributions."""


class ContractViolation(BenchtoolError):
    """A plugin broke a rule of its contract; the harness fails that plugin's cell."""

    def __init__(self, plugin: str, rule: str, detail: str) -> None:
        self.plugin = plugin
        self.rule = rule
        self.detail = detail
        super().__init__(f"plugin {plugin!r} broke rule {rule!r}: {detail}")


class UndeclaredHyperParameter(ContractViolation, KeyError):
    """A plugin read a hyper-parameter it does not declare in ``defaults``. A KeyError too, so
    ``try: params[k] except KeyError`` in plugin code keeps working."""

    def __init__(self, plugin: str, key: object, declared: list[str]) -> None:
        self.key = key
        self.declared = declared
        listed = ", ".join(repr(k) for k in declared) if declared else "none"
        super().__init__(
            plugin, "declared-hyperparameter",
            f"read hyper-parameter {key!r}, which it does not declare; declared: {listed} "
            f"(add {key!r} to the class's defaults)",
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return Exception.__str__(self)


def did_you_mean(bad: str, valid: list[str] | tuple[str, ...]) -> str:
    """``"did you mean 'x'?"`` for the valid name closest to ``bad``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(bad, list(valid), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def choices_error(what: str, bad: object, valid: list[str] | tuple[str, ...]) -> UsageError:
    """The one-line error for an unknown name: says the bad value and the valid ones."""
    listed = ", ".join(valid) if valid else "(none registered)"
    return UsageError(f"unknown {what} {bad!r}; expected one of: {listed}")
