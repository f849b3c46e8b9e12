"""The claims' pytest plugin: when the run ends, run every suite's analyses
(:mod:`benchtool.analyses`), decide every claim of every suite that ran and (1) hand the
analyses' records and the verdicts on as finished cases, before the run's JSON is written
and the store closes; (2) print the Claims table first in the terminal summary.

Claims and analyses are read from the ``CLAIMS`` and ``ANALYSES`` lists of each suite
module that recorded results, so a third-party suite declares its own exactly as the
built-in ones do.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from benchtool.analyses import ANALYSES_ATTRIBUTE, Analysis, is_analysis_case
from benchtool.claims.core import VERDICT_NODEID_PREFIX, ClaimSet, Verdict, verdict_cases

verdicts_key = pytest.StashKey[list[Verdict]]()
failed_analyses_key = pytest.StashKey[list[str]]()  # the messages of the analyses that failed
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
    sys.modules[spec.name] = module  # as an import does: a dataclass in the suite looks its module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


def suite_modules(session: pytest.Session, nodeids: list[str]) -> list[ModuleType]:
    """The suite modules of the session's items and of the given cases."""
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
    return modules


def collect_claims(modules: list[ModuleType]) -> ClaimSet:
    """The claims declared by the suite modules."""
    claims = ClaimSet()
    for module in modules:
        for claim in getattr(module, CLAIMS_ATTRIBUTE, ()) or ():
            claims.add(claim, module.__name__)
    return claims


def collect_analyses(modules: list[ModuleType]) -> list[Analysis]:
    """The analyses declared by the suite modules, in declaration order; an entry that is no
    :class:`Analysis` becomes one that fails its own case, saying so (the run keeps the rest)."""
    found: list[Analysis] = []
    for module in modules:
        for analysis in getattr(module, ANALYSES_ATTRIBUTE, ()) or ():
            found.append(analysis if isinstance(analysis, Analysis) else _invalid(module, analysis))
    return found


def _invalid(module: ModuleType, entry: object) -> Analysis:
    def run(records: object) -> list:
        raise TypeError(f"{module.__name__}: ANALYSES holds {entry!r}, expected benchtool.analyses.Analysis")

    suite = Path(str(module.__file__)).stem.removeprefix("test_")
    return Analysis("invalid-declaration", suite, run, ())


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Run the analyses, decide the claims and add both to the run's cases (before the bridge
    writes ``--bt-json`` and the store finishes the run)."""
    bench = _bench(session.config)
    if bench is None or not bench.cases:
        return
    suite_cases = [c for c in bench.cases
                   if not c.nodeid.startswith(VERDICT_NODEID_PREFIX) and not is_analysis_case(c.nodeid)]
    modules = suite_modules(session, [c.nodeid for c in suite_cases])
    ran = {c.suite for c in suite_cases if c.records}
    cfg = bench.config
    records = [r for case in suite_cases for r in case.records]
    failed: list[str] = []
    for analysis in collect_analyses(modules):
        if analysis.suite in ran:
            case = analysis.case(records)
            records.extend(case.records)
            bench.cases.append(case)
            bench.host.hook.benchtool_case_finished(config=cfg, case=case)
            if case.outcome == "failed":
                failed.append(case.message)
    if failed:  # like a failed cell: the run's other results stand, its exit status says so
        session.config.stash[failed_analyses_key] = failed
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    claims = collect_claims(modules)
    if not claims.claims:
        return
    verdicts = claims.decide(records, ran)
    session.config.stash[verdicts_key] = verdicts
    for case in verdict_cases(verdicts, seed=cfg.seed, device=str(cfg.device)):
        bench.cases.append(case)
        bench.host.hook.benchtool_case_finished(config=cfg, case=case)


@pytest.hookimpl(tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The Claims table, before the leaderboards."""
    from benchtool.tables import claims_table

    for message in config.stash.get(failed_analyses_key, []):
        terminalreporter.write_line(f"benchtool: {message}", red=True)
    verdicts = config.stash.get(verdicts_key, None)
    if not verdicts:
        return
    terminalreporter.write_sep("=", "benchtool claims")
    for line in claims_table(verdicts):
        terminalreporter.write_line(line)
