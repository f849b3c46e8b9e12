"""The benchtool lines of pytest's report header: run, plugins, data roots and datasets."""

from __future__ import annotations

import pytest

from benchtool import __version__
from benchtool.pytest.session import BenchSession, session_key


def pytest_report_header(config: pytest.Config) -> list[str]:
    bench = config.stash.get(session_key, None)
    if bench is None:
        return []
    rc, host = bench.config, bench.host
    lines = [f"benchtool {__version__}: device {rc.device}, budget {rc.budget}, seed {rc.seed}"]
    plugins = ", ".join(f"{s.name} ({s.distribution} {s.version})" for s in host.sources.values())
    lines.append(f"benchtool plugins: {plugins or '(none)'}")
    lines += [f"benchtool plugin FAILED: {failure}" for failure in host.failures]
    if host.blocked:
        lines.append(f"benchtool plugins blocked: {', '.join(host.blocked)}")
    lines += [f"benchtool WARNING: {warning}" for warning in host.warnings]
    lines += dataset_header_lines(bench)
    return lines


def dataset_header_lines(bench: BenchSession) -> list[str]:
    """The data search path, and which datasets that read local files were found where and
    which were not (suites skip an optional dataset that is not found)."""
    from benchtool.config import data_search_path
    from benchtool.data.loading import locate_root

    roots = data_search_path(bench.config.data_root)
    found, missing = [], []
    registry = bench.host.registry
    for name in registry.names("datasets"):
        try:
            dataset = registry.create("datasets", name)
        except Exception:  # noqa: BLE001 - a broken plugin is reported where it is used
            continue
        if not callable(getattr(dataset, "check_files", None)):
            continue  # built-in or generated: always there
        root = locate_root(dataset, roots)
        folder = getattr(dataset, "locate", lambda r: r)(root) if root is not None else None
        (found if root is not None else missing).append(f"{name} ({folder})" if root is not None else name)
    lines = [f"benchtool data roots: {', '.join(str(r) for r in roots)}"]
    if found:
        lines.append(f"benchtool datasets found: {', '.join(found)}")
    if missing:
        why = "--bt-download fetches one named with --bt-datasets" if bench.config.download else (
            "their files are in no data root; suites skip them where optional")
        lines.append(f"benchtool datasets not found: {', '.join(missing)} ({why})")
    return lines
