"""``benchtool bench-compare``: two revisions benchmarked side by side via git worktrees, and
the benchmark conftest's CUDA-aware timer and machine info."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from benchtool.benchmarking import FailRule, gpu_machine_info, judge_benchmarks, synchronized_timer
from benchtool.cli import main
from benchtool.errors import UsageError

FAST = "def work():\n    return sum(range(100))\n"
SLOW = "import time\n\ndef work():\n    time.sleep(0.02)\n    return sum(range(100))\n"
BENCH = "import mymod\n\ndef test_work(benchmark):\n    benchmark(mymod.work)\n"
# keep each revision's run short; the benchtool bridge is not needed by these benchmarks
PYTEST_ARGS = ["--", "-p", "no:benchtool", "--benchmark-min-rounds=3", "--benchmark-max-time=0.05",
               "--benchmark-warmup=off"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "benchmarks").mkdir(parents=True)
    (root / "mymod.py").write_text(FAST)
    (root / "benchmarks" / "test_work.py").write_text(BENCH)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "fast")
    return root


def test_a_slower_working_tree_fails_and_worktrees_are_removed(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "mymod.py").write_text(SLOW)  # the candidate: uncommitted, 20 ms slower per call
    assert main(["bench-compare", "HEAD", ".", "--repo", str(repo), "--rounds", "1", *PYTEST_ARGS]) == 1
    out = capsys.readouterr().out
    assert "benchmarks/test_work.py::test_work" in out
    (slower,) = [line for line in out.splitlines() if line.startswith("SLOWER")]
    assert "limit 1.10x" in slower
    assert git(repo, "worktree", "list").count("\n") == 0  # only the main checkout is left


def test_bad_input_is_a_usage_error(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-compare", "HEAD", "no-such-branch", "--repo", str(repo)]) == 2
    assert "unknown revision 'no-such-branch'" in capsys.readouterr().err
    assert main(["bench-compare", "HEAD", ".", "--repo", str(repo), "--fail", "p99:5%"]) == 2
    assert "expected STAT:PERCENT" in capsys.readouterr().err
    assert main(["bench-compare", "HEAD", ".", "--repo", str(repo), "--benchmarks", "nope"]) == 2
    assert "has no nope" in capsys.readouterr().err
    assert main(["bench-compare", "HEAD", ".", "--repo", str(tmp_path / "missing")]) == 2


def test_verdicts_use_the_threshold_both_ways() -> None:
    rule = FailRule.parse("median:10%")
    before = {"same": 1.0, "slow": 1.0, "fast": 1.0, "gone": 1.0}
    after = {"same": 1.09, "slow": 1.11, "fast": 0.8, "new": 1.0}
    changes = {c.name: c.verdict for c in judge_benchmarks(before, after, rule)}
    assert changes == {"same": "same", "slow": "SLOWER", "fast": "faster", "gone": "only in A", "new": "only in B"}
    with pytest.raises(UsageError):
        FailRule.parse("median:ten%")


def test_timer_and_machine_info_without_cuda() -> None:
    first, second = synchronized_timer(), synchronized_timer()
    assert second >= first
    info = gpu_machine_info()
    assert "torch" in info and isinstance(info["gpus"], list)


def test_benchmark_conftest_installs_the_synchronizing_timer(tmp_path: Path) -> None:
    benchmarks = Path(__file__).parents[1] / "benchmarks"
    code = pytest.main([str(benchmarks / "test_store_bench.py"), "--benchmark-only", "--benchmark-max-time=0.02",
                        f"--benchmark-json={tmp_path / 'b.json'}", "-p", "no:cacheprovider", "-q"])
    assert code == 0
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["benchmarks"][0]["options"]["timer"] == synchronized_timer.__name__
    assert "gpus" in data["machine_info"] and "torch" in data["machine_info"]
