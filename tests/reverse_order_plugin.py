"""A pytest plugin for the reproducibility tests: run the selected cells in reverse order
(``-p reverse_order_plugin``), so each cell follows what it preceded in a normal run."""

from __future__ import annotations

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.reverse()
