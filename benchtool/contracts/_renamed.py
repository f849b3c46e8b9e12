"""A harness method's old name, kept for callers written before the naming rule (README,
Architecture: a name is a plugin verb or a harness verb across every contract, never both)."""

from __future__ import annotations

import warnings
from typing import Any


class Renamed:
    """``sample = Renamed("draw")`` in a class body: reading ``obj.sample`` warns
    (DeprecationWarning naming the new name) and returns ``obj.draw``."""

    def __init__(self, new: str) -> None:
        self.new = new

    def __set_name__(self, owner: type, name: str) -> None:
        self.old, self.owner = name, owner.__qualname__

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        warnings.warn(f"{self.owner}.{self.old} is renamed {self.owner}.{self.new}; {self.old!r} names a plugin "
                      "verb in another contract", DeprecationWarning, stacklevel=2)
        return getattr(objtype if obj is None else obj, self.new)
