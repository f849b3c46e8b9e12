"""What a plugin module sees of benchtool, depending on nothing of the host: the hook markers
(exported as ``benchtool.hookimpl`` / ``benchtool.hookspec``) and the interface of the host that
``benchtool_configure`` hands a plugin. The hook contract (:mod:`benchtool.hookspecs`) types
against this interface, and the host (:class:`benchtool.host.Host`) implements it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pluggy

if TYPE_CHECKING:
    from benchtool.registry import Registry

PROJECT = "benchtool"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@runtime_checkable
class HostView(Protocol):
    """The host as ``benchtool_configure`` gives it: the registry, the hooks and the run's metadata."""

    registry: Registry

    @property
    def hook(self) -> Any: ...

    def run_metadata(self, config: Any) -> dict[str, Any]: ...
