"""pytest-benchmark settings for every benchmark module here.

- The timer waits for queued CUDA work (``benchtool.benchmarking.synchronized_timer``), so
  a GPU benchmark measures the kernels, not their launch. An explicit ``--benchmark-timer``
  still wins.
- ``machine_info`` in saved results names the GPUs, the driver and the CUDA version, so a
  comparison across machines says so.

Recipe (README "Speed regressions"): on main ``pytest benchmarks/ --benchmark-only
--benchmark-autosave``; on a change ``pytest benchmarks/ --benchmark-only --benchmark-compare
--benchmark-compare-fail=median:10%``; on a shared, noisy CI machine ``benchtool
bench-compare origin/main .`` measures both revisions side by side in one job; CI gates each
commit against its parent that way (``.ci/run``; benchmarks/README.md, "The CI speed gate").
"""

from __future__ import annotations

from typing import Any

import pytest
from pytest_benchmark.timers import default_timer

from benchtool.benchmarking import gpu_machine_info, synchronized_timer

PYTEST_BENCHMARK_DEFAULT_TIMER = f"{default_timer.__module__}.{default_timer.__name__}"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Swap in the synchronizing timer before pytest-benchmark reads the option (unless given)."""
    given = any(str(arg).startswith("--benchmark-timer") for arg in config.invocation_params.args)
    if not given and getattr(config.option, "benchmark_timer", None) == PYTEST_BENCHMARK_DEFAULT_TIMER:
        config.option.benchmark_timer = f"{synchronized_timer.__module__}.{synchronized_timer.__name__}"


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    machine_info.update(gpu_machine_info())
