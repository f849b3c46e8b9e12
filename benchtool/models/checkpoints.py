"""The checkpoint cache: trained state_dicts keyed by (model, dataset, seed, recipe, version).

Files are written to a temporary name and renamed into place (``os.replace``), so a reader
never sees half a file; a per-key lock file (``fcntl.flock``, where the OS has it) makes a
second process that wants the same model wait for the first and then load its result.
Files are read with ``torch.load(..., weights_only=True)``: tensors and plain containers
only, never an arbitrary pickle. A file that cannot be read, belongs to another key or
does not fit the network is reported in one line (:class:`CheckpointWarning`) and the
caller retrains.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchtool import __version__
from benchtool.contracts.data import DatasetInfo
from benchtool.contracts.model import TrainRecipe

try:
    import fcntl
except ImportError:  # Windows: atomic rename still keeps files whole, without the wait
    fcntl = None  # type: ignore[assignment]

CACHE_ENV = "BENCHTOOL_CACHE"
FORMAT = 1  # bump when the file layout changes


class CheckpointWarning(UserWarning):
    """A cached checkpoint was unusable (and is being retrained) or could not be written."""


def default_cache_dir() -> Path:
    """``$BENCHTOOL_CACHE``, else ``~/.cache/benchtool``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "benchtool").expanduser()


def cache_key(model: str, info: DatasetInfo, seed: int, recipe: TrainRecipe) -> dict[str, Any]:
    """Everything a trained network depends on, as a JSON-able dict."""
    return {
        "format": FORMAT,
        "benchtool": __version__,
        "model": model,
        "dataset": info.name,
        "input_shape": list(info.input_shape),
        "num_classes": info.num_classes,
        "output_dim": info.output_dim,
        "seed": seed,
        "recipe": recipe.as_dict(),
    }


STATE_DICT_EXAMPLE = "a file saved with torch.save(model.state_dict(), PATH)"


def read_state_dict(path: str | os.PathLike[str], option: str = "--bt-checkpoint") -> dict[str, torch.Tensor]:
    """A user's state_dict file, checked before any work: it loads with
    ``torch.load(weights_only=True)`` (never an arbitrary pickle) and holds a non-empty mapping
    of str -> tensor (or a dict holding one under ``'state_dict'``). Any other file is a
    one-line :class:`~benchtool.errors.UsageError` naming it and what was expected."""
    from benchtool.errors import UsageError

    path = Path(path).expanduser()
    where = f"{option} {path}"
    if not path.is_file():
        raise UsageError(f"{where}: no such file" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, foreign pickle, text, bad bytes ...
        raise UsageError(
            f"{where}: not loadable with torch.load(weights_only=True) ({_why_unloadable(exc)}); "
            f"expected {STATE_DICT_EXAMPLE}"
        ) from None
    state = content.get("state_dict", content) if isinstance(content, dict) else content
    if not isinstance(state, dict):
        raise UsageError(f"{where}: holds a {type(state).__name__}, not a state_dict; expected {STATE_DICT_EXAMPLE}")
    if not state:
        raise UsageError(f"{where}: holds an empty dict; expected {STATE_DICT_EXAMPLE}")
    for key, value in state.items():
        if not isinstance(key, str):
            raise UsageError(f"{where}: key {key!r} is not a parameter name (a string); expected {STATE_DICT_EXAMPLE}")
        if not isinstance(value, torch.Tensor):
            raise UsageError(
                f"{where}: entry {key!r} is not a tensor ({type(value).__name__}); expected {STATE_DICT_EXAMPLE}"
            )
    return state


def _why_unloadable(exc: Exception) -> str:
    """torch.load's reason in a few words (its messages run to paragraphs)."""
    text = " ".join(str(exc).split())
    marker = "WeightsUnpickler error:"
    if marker in text:
        reason = text.split(marker, 1)[1].split("Check the documentation", 1)[0].strip()
        return f"the weights-only unpickler refused it: {reason or type(exc).__name__}"
    return f"{type(exc).__name__}: {text.split('. ', 1)[0][:160]}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def warn(message: str) -> None:
    warnings.warn(message.replace("\n", " "), CheckpointWarning, stacklevel=3)


class CheckpointCache:
    """State_dict files under ``<cache_dir>/checkpoints``."""

    def __init__(self, cache_dir: Path) -> None:
        self.folder = Path(cache_dir).expanduser() / "checkpoints"

    def path_for(self, key: dict[str, Any]) -> Path:
        text = json.dumps(key, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        return self.folder / f"{_safe(key['model'])}-{_safe(key['dataset'])}-seed{key['seed']}-{digest}.pt"

    @contextlib.contextmanager
    def lock(self, path: Path) -> Iterator[None]:
        """Hold the key's lock: one process trains a key while the others wait for its file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            yield
            return
        with open(path.with_name(path.name + ".lock"), "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def load(self, path: Path, key: dict[str, Any], model: nn.Module) -> bool:
        """Load ``path`` into ``model``; False (after one warning line) when it is unusable.
        A failed load may leave ``model`` half-loaded: build a fresh one before retraining."""
        if not path.exists():
            return False
        try:
            content = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - truncated zip, foreign pickle, bad bytes ...
            detail = str(exc).splitlines()[0][:160] if str(exc) else ""
            warn(f"checkpoint {path} is unreadable ({type(exc).__name__}: {detail}); retraining")
            return False
        problem = self._problem(content, key)
        if problem is None:
            try:
                model.load_state_dict(content["state_dict"], strict=True)
                return True
            except RuntimeError as exc:
                problem = f"does not fit the network ({str(exc).splitlines()[0][:160]})"
        warn(f"checkpoint {path} {problem}; retraining")
        return False

    @staticmethod
    def _problem(content: Any, key: dict[str, Any]) -> str | None:
        if not isinstance(content, dict) or content.get("format") != FORMAT:
            return "is not a benchtool checkpoint of format 1"
        if content.get("key") != json.dumps(key, sort_keys=True):
            return "belongs to another (model, dataset, seed, recipe, version) key"
        state = content.get("state_dict")
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            return "holds no state_dict of tensors"
        return None

    def save(self, path: Path, key: dict[str, Any], model: nn.Module) -> None:
        """Write the model's state_dict atomically; a failure is a warning, not an error."""
        content = {
            "format": FORMAT,
            "key": json.dumps(key, sort_keys=True),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        }
        temp: Path | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=self.folder)
            temp = Path(name)
            with os.fdopen(fd, "wb") as handle:
                torch.save(content, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
            temp = None
        except OSError as exc:
            warn(f"could not write checkpoint {path} ({exc}); the model is trained but not cached")
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)
