"""A tabular NAS benchmark: every architecture of a space trained with several seeds,
in one JSON file shipped with the package (no download, ever).

Schema (``format`` = ``benchtool-nas-table/1``)::

    {"format", "space", "space_size", "dataset", "split", "recipe", "training_seeds",
     "device", "torch", "generated_by", ...provenance...,
     "architectures": {key: {"params": int, "val_accuracy": [per seed],
                             "test_accuracy": [per seed], "train_seconds": [per seed]}}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchtool.contracts.nas import Architecture, InvalidArchitecture, SearchSpace
from benchtool.errors import UsageError

TABLE_FORMAT = "benchtool-nas-table/1"
PER_SEED_FIELDS = ("val_accuracy", "test_accuracy", "train_seconds")


@dataclass
class NasTable:
    """Per-architecture results as arrays: rows follow ``keys``, columns the seeds."""

    meta: dict[str, Any]
    keys: list[str]
    params: np.ndarray  # (n,) int64
    val_accuracy: np.ndarray  # (n, seeds)
    test_accuracy: np.ndarray  # (n, seeds)
    train_seconds: np.ndarray  # (n, seeds)
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {key: row for row, key in enumerate(self.keys)}

    @property
    def num_seeds(self) -> int:
        return int(self.val_accuracy.shape[1])

    @property
    def mean_test(self) -> np.ndarray:
        return self.test_accuracy.mean(axis=1)

    @property
    def best_test(self) -> float:
        """The optimum on test (mean over seeds): regret is measured against it."""
        return float(self.mean_test.max())

    def row(self, key: str) -> int:
        try:
            return self.index[key]
        except KeyError:
            raise KeyError(f"architecture {key!r} is not in the table of {self.meta.get('space')!r}") from None

    @classmethod
    def load(cls, path: str | Path) -> NasTable:
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"NAS table {path} does not exist; generate it with scripts/generate_nas_table.py")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UsageError(f"NAS table {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT:
            raise UsageError(f"NAS table {path}: expected format {TABLE_FORMAT!r}, got {data.get('format')!r}")
        entries = data.pop("architectures", None)
        if not isinstance(entries, dict) or not entries:
            raise UsageError(f"NAS table {path} has no architectures")
        keys = sorted(entries)
        seeds = len(data.get("training_seeds", []))
        arrays: dict[str, list[list[float]]] = {f: [] for f in PER_SEED_FIELDS}
        for key in keys:
            entry = entries[key]
            for name in PER_SEED_FIELDS:
                values = entry.get(name)
                if not isinstance(values, list) or len(values) != seeds:
                    raise UsageError(f"NAS table {path}: {key} {name} must list {seeds} values (one per seed)")
                arrays[name].append(values)
        return cls(
            meta=data, keys=keys,
            params=np.array([entries[k]["params"] for k in keys], dtype=np.int64),
            **{name: np.array(arrays[name], dtype=np.float64) for name in PER_SEED_FIELDS},
        )

    def to_json(self) -> dict[str, Any]:
        entries = {
            key: {"params": int(self.params[i]),
                  **{name: [round(float(v), 6) for v in getattr(self, name)[i]] for name in PER_SEED_FIELDS}}
            for i, key in enumerate(self.keys)
        }
        return {**self.meta, "format": TABLE_FORMAT, "architectures": entries}

    def save(self, path: str | Path) -> None:
        """Write atomically (temp file + rename), compact: the file ships in the wheel."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True))
        tmp.replace(target)

    def check_space(self, space: SearchSpace) -> None:
        """The table must be for ``space`` and hold every one of its architectures."""
        if self.meta.get("space") != space.name:
            raise UsageError(f"NAS table is for space {self.meta.get('space')!r}, not {space.name!r}")
        if len(self.keys) != space.size:
            raise UsageError(
                f"NAS table of {space.name!r} holds {len(self.keys)} architectures, the space has {space.size}"
            )
        for key in self.keys:
            try:
                arch: Architecture = space.from_key(key)
            except InvalidArchitecture as exc:
                raise UsageError(f"NAS table of {space.name!r}: {exc}") from None
            if space.key(arch) != key:
                raise UsageError(f"NAS table of {space.name!r}: key {key!r} is not canonical")
