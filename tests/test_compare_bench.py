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


# The CI gate (.ci/run): HEAD against its parent, medians, 60% tolerance, a slower benchmark
# confirmed over more rounds, benchmarks in one revision only reported, not failed. The timed
# work sleeps (wall clock, the default timer): CPU work on this shared VM runs at two speeds
# ~1.7x apart for seconds at a time, which a test of the gate's logic must not depend on; the
# hot paths' own noise, in CPU time as CI measures them, is in benchmarks/README.md.
GATE = ["bench-compare", "HEAD~1", "HEAD", "--rounds", "2", "--confirm", "1", "--fail", "median:60%", "--missing-ok"]
GATE_ARGS = PYTEST_ARGS  # (CI adds -k HOT_PATHS and --benchmark-timer=time.process_time)
ONCE = "import time\n\ndef _once():\n    time.sleep(0.004)\n\ndef work():\n    _once()\n"
TWICE = ONCE + "    _once()\n"  # the same work done twice: an injected 2x slowdown
STEADY = "\n\ndef test_steady(benchmark):\n    benchmark(mymod._once)\n"  # not slowed down by TWICE


def commit(repo: Path, message: str, files: dict[str, str]) -> None:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", message)


def ratios(out: str) -> dict[str, float]:
    """{benchmark: B/A} from bench-compare's table."""
    rows = [line.split() for line in out.splitlines() if line.startswith("benchmarks/")]
    return {row[0]: float(row[-2]) for row in rows if len(row) >= 3 and row[-2].replace(".", "").isdigit()}


@pytest.fixture
def gated(tmp_path: Path) -> Path:
    """A project whose last commit is the timed code, ready for a candidate commit on top."""
    root = tmp_path / "gated"
    root.mkdir()
    git(root, "init", "-q")
    commit(root, "base", {"mymod.py": ONCE, "benchmarks/test_work.py": BENCH + STEADY})
    return root


def test_gate_fires_on_an_injected_2x_slowdown(gated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit(gated, "do the work twice", {"mymod.py": TWICE})
    assert main([*GATE, "--repo", str(gated), *GATE_ARGS]) == 1
    out, err = capsys.readouterr()
    measured = ratios(out)
    assert 1.6 < measured["benchmarks/test_work.py::test_work"] < 2.4, out
    assert measured["benchmarks/test_work.py::test_steady"] < 1.6, out
    (slower,) = [line for line in out.splitlines() if line.startswith("SLOWER")]
    assert "test_work:" in slower and "limit 1.60x" in slower
    # the confirmation round ran the suspect alone, and it stayed slower
    assert "confirming 1 slower benchmark(s) over 1 more round(s): benchmarks/test_work.py::test_work (" in err
    assert "round 3/3: benchmarking" in err and "best of 2 round(s), of 3 for the 1 rechecked" in out


def test_gate_is_quiet_on_a_no_op_commit(gated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit(gated, "a comment", {"mymod.py": "# nothing timed changes\n" + ONCE})
    assert main([*GATE, "--repo", str(gated), *GATE_ARGS]) == 0
    out, err = capsys.readouterr()
    assert max(ratios(out).values()) < 1.6
    assert "SLOWER" not in out and "confirming" not in err


def test_gate_reports_benchmarks_in_one_revision_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "young"
    root.mkdir()
    git(root, "init", "-q")
    commit(root, "code, no benchmarks yet", {"mymod.py": ONCE})
    commit(root, "first benchmark", {"benchmarks/test_work.py": BENCH})
    # the parent has no benchmarks/: without --missing-ok that is bad input, with it a report
    assert main(["bench-compare", "HEAD~1", "HEAD", "--repo", str(root), "--rounds", "1", *GATE_ARGS]) == 2
    capsys.readouterr()
    assert main([*GATE, "--rounds", "1", "--repo", str(root), *GATE_ARGS]) == 0
    out = capsys.readouterr().out
    assert "not compared, in one revision only: 1 (benchmarks/test_work.py::test_work (only in B))" in out
    # a benchmark removed and one added: each is reported, the one in both is compared
    extra = "\n\ndef test_{}(benchmark):\n    benchmark(mymod.work)\n"
    commit(root, "one more", {"benchmarks/test_work.py": BENCH + extra.format("gone")})
    commit(root, "another instead", {"benchmarks/test_work.py": BENCH + extra.format("new")})
    assert main([*GATE, "--rounds", "1", "--repo", str(root), *GATE_ARGS]) == 0
    out = capsys.readouterr().out
    assert "test_gone (only in A)" in out and "test_new (only in B)" in out
    assert "compared 1 benchmark(s)" in out


def test_gate_selection_matching_nothing_and_a_failing_baseline(gated: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    failing = BENCH + "\n\ndef test_broken(benchmark):\n    benchmark(lambda: 1 / 0)\n"
    commit(gated, "a broken benchmark, a module that does not import",
           {"benchmarks/test_work.py": failing, "benchmarks/test_gone.py": "import no_such_module\n"})
    git(gated, "rm", "-q", "benchmarks/test_gone.py")
    commit(gated, "fix them", {"benchmarks/test_work.py": failing.replace("1 / 0", "1 / 1")})
    # A's failing benchmarks are left out of the gate (B's would be an error: CI runs them first)
    assert main([*GATE, "--rounds", "1", "--repo", str(gated), *GATE_ARGS]) == 0
    out = capsys.readouterr().out
    assert "test_broken (only in B)" in out and "compared 1 benchmark(s)" in out
    # a -k that selects nothing anywhere is a mistake, not a pass
    assert main([*GATE, "--rounds", "1", "--repo", str(gated), *GATE_ARGS, "-k", "no_such_benchmark"]) == 2
    assert "nothing to compare" in capsys.readouterr().err


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
