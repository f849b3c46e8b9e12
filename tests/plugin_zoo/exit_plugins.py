"""An attack that ends its own process with ``os._exit(1)`` (loaded with -p); when, is
chosen by ``ZOO_AT_EPS`` as in :mod:`hang_plugins`."""

from __future__ import annotations

import os

from hang_plugins import SignedStep

from benchtool import hookimpl


class ExitsItsProcess(SignedStep):
    name = "exit-one"

    def misbehave(self) -> None:
        os._exit(1)


@hookimpl
def benchtool_register_attacks(registry):
    registry.add(ExitsItsProcess)
