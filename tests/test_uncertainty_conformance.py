"""Every registered uncertainty estimator passes the conformance checks plugin authors run."""

from __future__ import annotations

from benchtool.testing import parametrize_with_checks, registered


@parametrize_with_checks(registered("estimators"))
def test_conformance(plugin, check) -> None:
    check(plugin)
