"""Datasets: built-in ones that need no download, and local files in their publishers' formats.

``load_dataset`` is the one way the harness loads a bundle (memoized, contract-checked).
Out-of-distribution sets carried in ``DataBundle.ood`` are described in
:data:`benchtool.data.shift.OOD_SETS` (images) and :class:`benchtool.data.toy.ToyRegression`.
"""

from __future__ import annotations

from benchtool.data.loading import clear_cache, load_dataset
from benchtool.data.shift import NO_LABEL, OOD_SETS

__all__ = ["NO_LABEL", "OOD_SETS", "clear_cache", "load_dataset"]
