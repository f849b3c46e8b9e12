"""numba-cuda 0.30 loads NumPy support that names ``np.row_stack``, which NumPy 2.5 removed:
the kernels module restores the alias only while that support is imported."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from benchtool.kernels import _cuda


def test_a_removed_alias_exists_only_while_the_support_module_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(np, "row_stack", raising=False)
    (tmp_path / "fake_numba_numpy_support.py").write_text(
        "import numpy as np\nALIAS_AT_IMPORT = np.row_stack is np.vstack\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fake_numba_numpy_support", raising=False)
    _cuda.load_numpy_support("fake_numba_numpy_support")
    assert sys.modules["fake_numba_numpy_support"].ALIAS_AT_IMPORT
    assert not hasattr(np, "row_stack")


def test_a_failing_support_import_still_removes_the_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(np, "row_stack", raising=False)
    (tmp_path / "broken_numba_numpy_support.py").write_text("raise RuntimeError('no driver')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RuntimeError, match="no driver"):
        _cuda.load_numpy_support("broken_numba_numpy_support")
    assert not hasattr(np, "row_stack")
    _cuda.load_numpy_support("no_such_numba_numpy_support")  # numba's built-in CUDA target: nothing to load
    assert not hasattr(np, "row_stack")


def test_numpy_is_left_alone_when_nothing_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(np, "row_stack", np.vstack, raising=False)
    _cuda.load_numpy_support("module_that_must_not_be_imported")
    assert "module_that_must_not_be_imported" not in sys.modules
    assert np.row_stack is np.vstack
