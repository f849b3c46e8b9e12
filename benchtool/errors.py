"""Errors the host raises: each names the plugin and the rule it broke."""

from __future__ import annotations

import re
from typing import Any


class BenchtoolError(Exception):
    """Base class of every error benchtool raises on purpose."""


class UsageError(BenchtoolError):
    """A bad value given by the user (option, name, path): the CLI exits 2 with it."""


class HyperparameterError(UsageError, ValueError):
    """A plugin's hyper-parameter holds a value the plugin cannot use; the plugin raises it
    (a ValueError to Python code). The host reports it as the user's bad value, message as it is:
    the guard lets it pass unwrapped and the CLI exits 2."""


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


class PluginRaised(ContractViolation):
    """The plugin's own code raised: ``plugin 'x' raised RuntimeError: message``.

    ``rule`` is ``no-exception``; ``error`` is what the plugin raised (also the ``__cause__``)."""

    def __init__(self, plugin: str, error: BaseException) -> None:
        name = type(error).__name__
        detail = describe_error(error)
        self.plugin, self.rule, self.error = plugin, "no-exception", error
        self.detail = f"{name}: {detail}" if detail else name
        BenchtoolError.__init__(self, f"plugin {plugin!r} raised {self.detail}")

    def __reduce__(self) -> Any:
        return _rebuild_raised, (self.plugin, self.detail, str(self))


def _rebuild_raised(plugin: str, detail: str, message: str) -> PluginRaised:
    error = PluginRaised.__new__(PluginRaised)
    error.plugin, error.rule, error.detail, error.error = plugin, "no-exception", detail, None
    BenchtoolError.__init__(error, message)
    return error


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


# --- out of memory --------------------------------------------------------------------

_OOM_TEXT = re.compile(r"out of memory|not enough memory|can(?:'|no)t allocate memory", re.IGNORECASE)
_TRIED_SIZE = re.compile(r"(?:tried to allocate|unable to allocate)\s+([\d.]+\s*[KMGTPE]?i?B)\b", re.IGNORECASE)
_TRIED_BYTES = re.compile(r"(?:tried to allocate|unable to allocate)\s+(\d+)\s+bytes", re.IGNORECASE)


def is_out_of_memory(error: BaseException) -> bool:
    """``MemoryError``, ``torch.cuda.OutOfMemoryError``, or a RuntimeError saying so (CPU allocator)."""
    return (isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError"
            or (isinstance(error, RuntimeError) and bool(_OOM_TEXT.search(str(error)))))


def format_bytes(count: int) -> str:
    value, unit = float(count), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            break
        value /= 1024
    return f"{count} bytes" if unit == "B" else f"{value:.2f} {unit} ({count} bytes)"


def describe_error(error: BaseException) -> str:
    """What went wrong in one line: the message, or for out of memory the size it tried
    (``out of memory, tried to allocate 2.00 GiB``)."""
    text = str(error).strip()
    if not is_out_of_memory(error):
        return text
    if match := _TRIED_BYTES.search(text):
        return f"out of memory, tried to allocate {format_bytes(int(match.group(1)))}"
    if match := _TRIED_SIZE.search(text):
        return f"out of memory, tried to allocate {match.group(1)}"
    return "out of memory" + (f": {text.splitlines()[0][:200]}" if text else "")


def last_line(text: object, limit: int = 300) -> str:
    """The last non-blank line of ``text`` (an error's output, a report), stripped and cut to
    ``limit`` characters: where a traceback or a tool says what finally went wrong."""
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""
