"""The claims' pytest plugin: when the run ends, decide every claim of every suite that
ran and (1) hand the verdicts on as records, one finished case per claim, before the
run's JSON is written and the store closes; (2) print the Claims table first in the
terminal summary.

Claims are read from the ``CLAIMS`` list of each suite module that recorded results, so
a third-party suite declares its claims exactly as the built-in ones do.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from benchtool.claims.core import VERDICT_NODEID_PREFIX, ClaimSet, Verdict, verdict_cases

verdicts_key = pytest.StashKey[list[Verdict]]()
CLAIMS_ATTRIBUTE = "CLAIMS"


def _bench(config: pytest.Config) -> Any:
    from benchtool.pytest_plugin import is_worker, session_key

    bench = config.stash.get(session_key, None)
    return None if bench is None or is_worker(config) else bench


def _module_for(path: Path) -> ModuleType | None:
    """The already imported module of a suite file, else the file imported on its own
    (a pytest-xdist controller never imports the suites its workers ran)."""
    resolved = path.resolve()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve() == resolved:
            return module
    if not resolved.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"_benchtool_claims_{resolved.stem}", resolved)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def collect_claims(session: pytest.Session, nodeids: list[str]) -> ClaimSet:
    """The claims declared by the suite modules of the given cases."""
    claims = ClaimSet()
    seen: set[Path] = set()
    modules: list[ModuleType] = []
    for item in session.items:
        module = getattr(item, "module", None)
        if module is not None and getattr(module, "__file__", None):
            path = Path(module.__file__).resolve()
            if path not in seen:
                seen.add(path)
                modules.append(module)
    root = session.config.rootpath
    for nodeid in nodeids:
        path = (root / nodeid.split("::", 1)[0]).resolve()
        if path in seen or path.suffix != ".py":
            continue
        seen.add(path)
        module = _module_for(path)
        if module is not None:
            modules.append(module)
    for module in modules:
        for claim in getattr(module, CLAIMS_ATTRIBUTE, ()) or ():
            claims.add(claim, module.__name__)
    return claims


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Decide the claims and add their verdicts to the run's cases (before the bridge writes
    ``--bt-json`` and the store finishes the run)."""
    bench = _bench(session.config)
    if bench is None or not bench.cases:
        return
    suite_cases = [c for c in bench.cases if not c.nodeid.startswith(VERDICT_NODEID_PREFIX)]
    claims = collect_claims(session, [c.nodeid for c in suite_cases])
    if not claims.claims:
        return
    records = [r for case in suite_cases for r in case.records]
    verdicts = claims.decide(records, {c.suite for c in suite_cases if c.records})
    session.config.stash[verdicts_key] = verdicts
    cfg = bench.config
    for case in verdict_cases(verdicts, seed=cfg.seed, device=str(cfg.device)):
        bench.cases.append(case)
        bench.host.hook.benchtool_case_finished(config=cfg, case=case)


@pytest.hookimpl(tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The Claims table, before the leaderboards."""
    from benchtool.tables import claims_table

    verdicts = config.stash.get(verdicts_key, None)
    if not verdicts:
        return
    terminalreporter.write_sep("=", "benchtool claims")
    for line in claims_table(verdicts):
        terminalreporter.write_line(line)
