"""Speed regression tracking: a CUDA-aware timer and machine info for pytest-benchmark, and
``benchtool bench-compare REV_A REV_B``, the A/B comparison that holds on a noisy machine.

pytest-benchmark's saved-baseline recipe (``--benchmark-autosave`` on main, then
``--benchmark-compare --benchmark-compare-fail=median:10%``) compares against numbers
measured on another day, maybe on another machine. ``bench-compare`` instead checks out
both revisions as git worktrees and measures them in the same job, alternating A and B
over several rounds, so both see the same machine and the same noise. CI gates every commit
with it against its parent (``.ci/run``; ``benchmarks/README.md``, "The CI speed gate").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchtool import hookimpl
from benchtool.commands import Commands
from benchtool.errors import UsageError
from benchtool.git import git
from benchtool.tables import format_table

WORKING_TREE = "."  # bench-compare's name for the checkout as it is, uncommitted changes included
STATS = ("min", "median", "mean")
PATH_ENTRIES = (".", "src", "plugins")  # put on PYTHONPATH so each tree imports its own code


# --- pytest-benchmark integration (used by benchmarks/conftest.py) -------------------------


def synchronized_timer() -> float:
    """``time.perf_counter`` after waiting for queued CUDA work, so GPU timings are real.

    pytest-benchmark reads the timer before and after each call; a CUDA kernel returns
    before it ran, so without the synchronisation the time of the launch is measured.
    Costs nothing when CUDA was never initialised in this process.
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return time.perf_counter()


def time_call(run: Callable[[], object]) -> float:
    """Seconds ``run()`` takes, queued CUDA work included (the scripts' side-by-side timer)."""
    start = synchronized_timer()
    run()
    return synchronized_timer() - start


def gpu_machine_info() -> dict[str, Any]:
    """GPU names, driver and CUDA versions for pytest-benchmark's ``machine_info``."""
    info: dict[str, Any] = {}
    try:
        import torch
    except ImportError:
        return info
    info["torch"] = torch.__version__
    if torch.cuda.is_available():
        info["cuda"] = torch.version.cuda
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        driver = _nvidia_smi("driver_version")
        if driver:
            info["gpu_driver"] = driver
    else:
        info["gpus"] = []
    return info


def _nvidia_smi(field: str) -> str:
    if shutil.which("nvidia-smi") is None:
        return ""
    try:
        done = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""


# --- bench-compare -----------------------------------------------------------------------


@dataclass(frozen=True)
class FailRule:
    """``median:10%``: fail when B's statistic exceeds A's by more than the fraction."""

    stat: str
    fraction: float

    @classmethod
    def parse(cls, text: str) -> FailRule:
        stat, sep, amount = text.partition(":")
        if not sep or stat not in STATS or not amount.endswith("%"):
            raise UsageError(f"invalid --fail {text!r}; expected STAT:PERCENT with STAT one of {', '.join(STATS)}, "
                             "e.g. median:10%")
        try:
            fraction = float(amount[:-1]) / 100
        except ValueError:
            raise UsageError(f"invalid --fail {text!r}; the percentage is not a number") from None
        if fraction < 0:
            raise UsageError(f"invalid --fail {text!r}; expected a percentage >= 0")
        return cls(stat, fraction)


def resolve_revision(repo: Path, rev: str) -> str:
    if rev == WORKING_TREE:
        return WORKING_TREE
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", timeout=60)
    except UsageError:
        raise UsageError(f"unknown revision {rev!r} in {repo}; expected a commit, branch or tag, or '.' "
                         "for the working tree") from None


def run_benchmarks(tree: Path, benchmarks: str, output: Path, extra: list[str],
                   missing_ok: bool = False, failures_ok: bool = False,
                   only: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Run ``benchmarks`` of one tree with its own code (``only``: just these node ids of it);
    {benchmark name: stats}.

    ``missing_ok``: a tree without the benchmarks path, or where the pytest options select
    none (pytest's exit 5), has no benchmarks instead of being an error. ``failures_ok``: when
    some benchmarks fail or their modules do not import, the ones that were measured still
    count (the rest are absent).
    """
    if not (tree / benchmarks).exists():
        if missing_ok:
            print(f"note: {tree} has no {benchmarks}; its benchmarks count as absent", file=sys.stderr)
            return {}
        raise UsageError(f"{tree} has no {benchmarks}; expected the benchmarks path in both revisions")
    env = dict(os.environ)
    entries = [str(tree / e) for e in PATH_ENTRIES if (tree / e).is_dir()]
    env["PYTHONPATH"] = os.pathsep.join(entries + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    argv = [sys.executable, "-m", "pytest", *(only or [benchmarks]), "--benchmark-only", f"--benchmark-json={output}",
            "-p", "no:cacheprovider", "-q", *(["--continue-on-collection-errors"] if failures_ok else []), *extra]
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True)
    tail = (done.stdout + done.stderr)[-2000:]
    if done.returncode == 5 and missing_ok:  # pytest: no tests collected (or all deselected)
        print(f"note: no benchmark selected in {tree}; its benchmarks count as absent", file=sys.stderr)
        return {}
    if done.returncode == 1 and failures_ok:
        print(f"note: benchmarks failed in {tree}; those measured still count:\n{tail}", file=sys.stderr)
        if not output.is_file():  # none measured
            return {}
    elif done.returncode != 0 or not output.is_file():
        raise UsageError(f"the benchmarks failed in {tree} (exit {done.returncode}):\n{tail}")
    data = json.loads(output.read_text())
    return {b["fullname"]: {s: float(b["stats"][s]) for s in STATS} for b in data["benchmarks"]}


def _seconds(value: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


@dataclass(frozen=True)
class BenchChange:
    name: str
    a: float | None
    b: float | None
    verdict: str  # SLOWER | faster | same | only in A | only in B

    @property
    def ratio(self) -> float | None:
        return None if self.a is None or self.b is None or self.a == 0 else self.b / self.a


def judge_benchmarks(a: dict[str, float], b: dict[str, float], rule: FailRule) -> list[BenchChange]:
    changes = []
    for name in sorted(a.keys() | b.keys()):
        va, vb = a.get(name), b.get(name)
        if va is None or vb is None:
            changes.append(BenchChange(name, va, vb, "only in B" if va is None else "only in A"))
            continue
        if vb > va * (1 + rule.fraction):
            verdict = "SLOWER"
        elif vb < va / (1 + rule.fraction):
            verdict = "faster"
        else:
            verdict = "same"
        changes.append(BenchChange(name, va, vb, verdict))
    return changes


def _configure_bench_compare(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rev_a", metavar="REV_A", help="the baseline revision (commit, branch, tag)")
    parser.add_argument("rev_b", metavar="REV_B", help="the candidate revision, or '.' for the working tree")
    parser.add_argument("--repo", default=".", help="the git repository (default: the current directory)")
    parser.add_argument("--benchmarks", default="benchmarks", metavar="PATH",
                        help="benchmark path inside each tree (default: benchmarks)")
    parser.add_argument("--rounds", type=int, default=2, metavar="N",
                        help="A/B rounds, alternating the order (default: 2); each statistic keeps its best round")
    parser.add_argument("--confirm", type=int, default=0, metavar="N",
                        help="N more rounds for just the benchmarks slower than allowed after --rounds, each "
                             "keeping its best over all rounds: a slowdown stays, a slow spell of the machine "
                             "goes (default: 0)")
    parser.add_argument("--fail", default="median:10%", metavar="STAT:PERCENT",
                        help="exit 1 when B is slower than A by more than this (default: median:10%%)")
    parser.add_argument("--missing-ok", action="store_true",
                        help="a revision may lack the benchmarks path or select none of them (an older commit), "
                             "and A's failing benchmarks are left out: all of these are reported as only in one "
                             "revision, never failed (the CI gate's setting)")


@hookimpl
def benchtool_register_commands(commands: Commands) -> None:
    commands.add("bench-compare", "benchmark two revisions side by side in this job (git worktrees) and compare; "
                 "pytest options after --", bench_compare, _configure_bench_compare, passthrough=True)


def bench_compare(args: argparse.Namespace, extra: list[str]) -> int:
    rule = FailRule.parse(args.fail)
    if args.rounds < 1:
        raise UsageError(f"invalid --rounds {args.rounds}; expected 1 or more")
    if args.confirm < 0:
        raise UsageError(f"invalid --confirm {args.confirm}; expected 0 or more")
    repo = Path(git(Path(args.repo), "rev-parse", "--show-toplevel"))
    revisions = [resolve_revision(repo, args.rev_a), resolve_revision(repo, args.rev_b)]
    best: list[dict[str, float]] = [{}, {}]
    confirmed: list[str] = []  # the benchmarks given the --confirm rounds
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bt-bench-") as tmp:
        trees = [_checkout(repo, rev, Path(tmp) / f"tree-{i}") for i, rev in enumerate(revisions)]

        def one_round(round_index: int, total: int, only: list[str] | None) -> None:
            order = (0, 1) if round_index % 2 == 0 else (1, 0)
            for side in order:
                label = "AB"[side]
                given = (args.rev_a, args.rev_b)[side]
                print(f"round {round_index + 1}/{total}: benchmarking {label} ({given})", file=sys.stderr)
                stats = run_benchmarks(trees[side], args.benchmarks, Path(tmp) / f"{label}{round_index}.json",
                                       extra, missing_ok=args.missing_ok, failures_ok=args.missing_ok and side == 0,
                                       only=only)
                for name, values in stats.items():
                    value = values[rule.stat]
                    best[side][name] = min(value, best[side].get(name, value))

        try:
            for round_index in range(args.rounds):
                one_round(round_index, args.rounds, None)
            suspects = [c for c in judge_benchmarks(best[0], best[1], rule) if c.verdict == "SLOWER"]
            confirmed = [c.name for c in suspects]
            if confirmed and args.confirm:
                print(f"confirming {len(confirmed)} slower benchmark(s) over {args.confirm} more round(s): "
                      f"{', '.join(f'{c.name} ({c.ratio:.3f})' for c in suspects)}", file=sys.stderr)
                for round_index in range(args.rounds, args.rounds + args.confirm):
                    one_round(round_index, args.rounds + args.confirm, confirmed)
            else:
                confirmed = []
        finally:
            for tree, rev in zip(trees, revisions):
                if rev != WORKING_TREE:
                    with contextlib.suppress(UsageError):  # cleanup: what is left, git worktree prune removes
                        git(repo, "worktree", "remove", "--force", str(tree))
    changes = judge_benchmarks(best[0], best[1], rule)
    if not changes:
        raise UsageError(f"no benchmark ran in either revision ({args.benchmarks} with the options given); "
                         "nothing to compare")
    names = [rev[:12] if rev != WORKING_TREE else "working tree" for rev in revisions]
    print(f"A = {args.rev_a} ({names[0]}), B = {args.rev_b} ({names[1]}); "
          f"{rule.stat}, best of {args.rounds} round(s)"
          f"{f', of {args.rounds + args.confirm} for the {len(confirmed)} rechecked' if confirmed else ''}; "
          f"slower means B > A by more than {rule.fraction:.0%}")
    rows = [[c.name, "" if c.a is None else _seconds(c.a), "" if c.b is None else _seconds(c.b),
             "" if c.ratio is None else f"{c.ratio:.3f}", c.verdict] for c in changes]
    for line in format_table(["benchmark", "A", "B", "B/A", "verdict"], rows):
        print(line)
    one_sided = [c for c in changes if c.a is None or c.b is None]
    if one_sided:
        print(f"not compared, in one revision only: {len(one_sided)} "
              f"({', '.join(f'{c.name} ({c.verdict})' for c in one_sided)})")
    ratios = [(ratio, c.name) for c in changes if (ratio := c.ratio) is not None]
    worst = f"; largest B/A {max(ratios)[0]:.3f} ({max(ratios)[1]})" if ratios else ""
    print(f"compared {len(changes) - len(one_sided)} benchmark(s) in {time.monotonic() - started:.0f} s{worst}")
    slower = [c for c in changes if c.verdict == "SLOWER"]
    for change in slower:
        print(f"SLOWER {change.name}: {_seconds(change.a or 0)} -> {_seconds(change.b or 0)} "
              f"({change.ratio:.2f}x, limit {1 + rule.fraction:.2f}x)")
    return 1 if slower else 0


def _checkout(repo: Path, rev: str, target: Path) -> Path:
    """A detached worktree of ``rev`` (the repository itself for the working tree)."""
    if rev == WORKING_TREE:
        return repo
    git(repo, "worktree", "add", "--detach", "--quiet", str(target), rev)
    return target
