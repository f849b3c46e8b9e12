"""The pytest bridge, one pytest plugin module per feature (as ``_pytest/`` is built).

:mod:`benchtool.pytest_plugin`, the ``pytest11`` entry point, registers every module of
:data:`FEATURES`. Each feature owns its options (``pytest_addoption``) and its step of the
run's configuration (``pytest_benchtool_configure``, :mod:`benchtool.pytest.hookspecs`).
"""

FEATURES = [  # a module before the features that import it (pytest cannot rewrite one imported already)
    "benchtool.pytest.options",     # the run's core options, the host, the run config
    "benchtool.pytest.header",      # the report header's benchtool lines
    "benchtool.pytest.xdist",       # --bt-gpus: pytest-xdist workers' devices, threads and model groups
    "benchtool.pytest.dispatch",    # --bt-executor and each executor's options; cells shipped to one
    "benchtool.store.bridge",       # --bt-store, --bt-resume
    "benchtool.pytest.records",     # bt_record, bt_case: a case's figures
    "benchtool.pytest.cell_checks",  # run values checked against the selected cells
    "benchtool.pytest.parametrize",  # suite tests parametrized from the registry
    "benchtool.pytest.fixtures",    # plugin, model and dataset fixtures
    "benchtool.pytest.collector",   # finished cases to the lifecycle hooks, --bt-json, tables
]
