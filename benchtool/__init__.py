"""benchtool: benchmark the known limits of deep learning.

Plugins implement hooks marked with :data:`hookimpl`; the host (:mod:`benchtool.host`)
discovers them through the ``benchtool`` entry-point group.
"""

from __future__ import annotations

from benchtool.plugin_api import hookimpl, hookspec

__version__ = "0.1.0"

__all__ = ["__version__", "hookimpl", "hookspec"]
