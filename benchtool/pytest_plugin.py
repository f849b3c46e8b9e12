"""The pytest bridge's entry point (``pytest11``): registers the bridge's feature modules
(:mod:`benchtool.pytest`) and the other features that are pytest plugins of their own.

A suite test asks for fixtures named after a plugin kind (``attack``, ``estimator``,
``strategy``, ``search_space``, ``loss_weighting``, ``target_function``) and/or ``model``
and ``dataset``; the bridge parametrizes them from the registry with plugin names as ids
(``test_robust_accuracy[pgd-lenet-digits]``). The names this module used to define live in
the feature modules now; importing one from here still works, with a DeprecationWarning.
"""

from __future__ import annotations

from benchtool._moved import moved_names
from benchtool.pytest import FEATURES
from benchtool.pytest.session import is_worker, session_key  # the run's state: still served from here

__all__ = ["is_worker", "session_key"]

pytest_plugins = [*FEATURES, "benchtool.claims.bridge", "benchtool.watchdog", "benchtool.reproducibility"]

MOVED = {
    "BenchSession": "benchtool.pytest.session",
    "cell_worker_key": "benchtool.pytest.session",
    "CaseInfo": "benchtool.pytest.records",
    "MODEL_DATA_FIXTURES": "benchtool.pytest.records",
    "PLUGIN_FIXTURES": "benchtool.pytest.records",
    "RECORDS_PROPERTY": "benchtool.pytest.records",
    "Recorder": "benchtool.pytest.records",
    "case_info": "benchtool.pytest.records",
    "records_key": "benchtool.pytest.records",
    "CELL_GROUP_PREFIX": "benchtool.pytest.parametrize",
    "FIXTURE_KINDS": "benchtool.pytest.cell_checks",
    "load_bundle": "benchtool.pytest.fixtures",
    "trained": "benchtool.pytest.fixtures",
    "ResultCollector": "benchtool.pytest.collector",
}

__getattr__ = moved_names(__name__, MOVED)
