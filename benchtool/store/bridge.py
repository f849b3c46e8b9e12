"""The store's and resume's part of the pytest bridge: ``--bt-store`` and ``--bt-resume``.

The values go to the run config, where the store plugin (:mod:`benchtool.store.plugin`)
reads them in ``benchtool_configure``; ``--bt-resume`` registers :class:`ResumeFilter` first.
"""

from __future__ import annotations

import pytest

from benchtool.pytest.session import BenchSession

RESUME_PLUGIN = "benchtool-resume"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("benchtool")
    group.addoption("--bt-store", default=None, metavar="PATH",
                    help="results database (default: $BENCHTOOL_STORE, else the project's .benchtool/results.db, "
                         "looked for from here up to the project root); -p no:store: none")
    group.addoption("--bt-resume", default=None, metavar="RUN_ID",
                    help="continue the stored run RUN_ID: run only the cases it has not finished")


@pytest.hookimpl(trylast=True)
def pytest_benchtool_configure(config: pytest.Config, bench: BenchSession) -> None:
    """After the other features' checks: the store and the run to resume, resolved once."""
    bench.config.options.update(store=config.getoption("--bt-store"), resume=config.getoption("--bt-resume"))
    if bench.config.options["resume"]:
        from benchtool.store.resume import ResumeFilter

        config.pluginmanager.register(ResumeFilter(bench.config, bench.host), RESUME_PLUGIN)
