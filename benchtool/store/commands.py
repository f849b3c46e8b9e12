"""``benchtool runs | show | compare`` (added by the ``store`` plugin) and the ``run --resume``
command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchtool.commands import Commands, forwarded_options, store_option
from benchtool.errors import UsageError
from benchtool.results import check_writable, write_json, write_text_atomically
from benchtool.comparison import COMPARISON_HEADERS, Policies, compare, comparison_rows, summary_line, to_json
from benchtool.store.db import cases_summary, commit_text, duration_text, format_time, run_facts
from benchtool.store.load import load_result_set
from benchtool.store.source import open_source, sqlite_store
from benchtool.tables import format_table, leaderboards

EXIT_REGRESSED = 1
COMMAND_WIDTH = 70  # `runs` shortens longer command lines (`show` prints them whole)
# pytest options whose value the resume replaces
RESUME_REPLACED = ("--bt-resume", "--bt-store")


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


@contextmanager
def reader_output() -> Iterator[None]:
    """Printing to a pipe the reader closed early (``benchtool runs | head``) ends the output
    quietly: what it wanted was shown, the rest goes nowhere, no BrokenPipeError traceback."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)  # the interpreter flushes stdout again at exit
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


# --- runs ----------------------------------------------------------------------------------


def _configure_runs(parser: argparse.ArgumentParser) -> None:
    store_option(parser, reads=True)
    parser.add_argument("--limit", type=int, default=20, metavar="N",
                        help="show the newest N runs (default: 20; 0: all)")


def runs(args: argparse.Namespace, extra: list[str]) -> int:
    if args.limit < 0:
        raise UsageError(f"invalid --limit {args.limit}; expected 0 (all) or a positive number")
    with open_source(args.store) as store:
        stored = store.runs(args.limit or None)
    headers = ["run", "started", "took", "state", "cases", "records", "budget", "device", "commit", "command"]
    rows = [
        [r.id, format_time(r.started), duration_text(r), r.state, cases_summary(r), r.records, r.budget,
         r.device_name or r.device, commit_text(r), _shorten(r.command, COMMAND_WIDTH)]
        for r in stored
    ]
    with reader_output():
        print(f"store: {store.path}")
        for line in format_table(headers, rows):
            print(line)
        if not stored:
            print(f"(no runs in {store.path})")
    return 0


# --- show ----------------------------------------------------------------------------------


def _configure_show(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN_ID", help="a run id, a unique prefix of one, latest or latest~N")
    store_option(parser, reads=True)
    parser.add_argument("--json", metavar="PATH", help="also write the run's records as a --bt-json file")


def show(args: argparse.Namespace, extra: list[str]) -> int:
    if args.json:
        check_writable(args.json, "--json")
    with open_source(args.store) as store:
        run = store.run(store.resolve(args.run))
        cases = store.cases(run.id)
    if args.json:
        write_json(args.json, [r for case in cases for r in case.records])
    with reader_output():
        for name, value in [*run_facts(run), ("store", str(store.path))]:
            print(f"{name + ':':10}{value}")
        for title, lines in leaderboards(cases):
            print(f"\n== {title} ==")
            for line in lines:
                print(line)
        failed = [c for c in cases if c.outcome == "failed"]
        if failed:
            print("\n== failed cases ==")
            for case in failed:
                print(f"{case.nodeid}: {case.message}")
        if args.json:
            print(f"\nrecords written to {args.json}")
    return 0


# --- compare -------------------------------------------------------------------------------


def _configure_compare(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", metavar="BASELINE", help="a run id (or latest~N) or a --bt-json file")
    parser.add_argument("candidate", metavar="CANDIDATE", help="a run id (or latest) or a --bt-json file")
    store_option(parser, reads=True)
    parser.add_argument("--tol", action="append", default=[], metavar="METRIC=TOL",
                        help="tolerance of a metric: absolute (robust_accuracy=0.01) or relative (nll=5%%); "
                             "METRIC may be KIND:METRIC (attacks:robust_accuracy)")
    parser.add_argument("--direction", action="append", default=[], metavar="METRIC=higher|lower|none",
                        help="which way a metric is better (none: report, never fail)")
    parser.add_argument("--all", action="store_true", help="also list the unchanged metrics")
    parser.add_argument("--json", metavar="PATH", help="also write the comparison as JSON")


def compare_runs(args: argparse.Namespace, extra: list[str]) -> int:
    policies = Policies.from_args(args.tol, args.direction)
    if args.json:
        check_writable(args.json, "--json", "comparison.json")
    baseline = load_result_set(args.baseline, args.store)
    candidate = load_result_set(args.candidate, args.store)
    comparison = compare(baseline, candidate, policies)
    if args.json:
        write_text_atomically(args.json, to_json(comparison))
    stores = sorted({s.store for s in (baseline, candidate) if s.store})
    with reader_output():
        print(f"baseline {baseline.label} vs candidate {candidate.label}"
              + "".join(f" (store {path})" for path in stores))
        rows = comparison_rows(comparison, args.all)
        if rows:
            for line in format_table(COMPARISON_HEADERS, rows):
                print(line)
        print(summary_line(comparison))
        for change in comparison.regressions:
            print(change.describe())
    return EXIT_REGRESSED if comparison.regressions else 0


def add_commands(commands: Commands) -> None:
    """``runs``, ``show`` and ``compare``, for the store plugin's ``benchtool_register_commands``."""
    commands.add("runs", "list the stored runs, newest first", runs, _configure_runs)
    commands.add("show", "print a stored run: its metadata and a leaderboard per suite", show, _configure_show)
    commands.add("compare", "compare two runs metric by metric; exit 1 when one regressed beyond its tolerance",
                 compare_runs, _configure_compare)


# --- run --resume ---------------------------------------------------------------------------


def resume_pytest_args(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """The stored run's own pytest command line plus ``--bt-resume``; moves to the run's directory
    so its relative paths mean what they meant."""
    given = [name for name, default in (("--device", "auto"), ("--budget", "default"), ("--seed", 0))
             if getattr(args, name[2:]) != default]
    if args.suites or given:
        what = ", ".join((["suites"] if args.suites else []) + given)
        raise UsageError(f"--resume {args.resume} re-runs that run's own command line; do not give {what} with it")
    with sqlite_store(args.store, f"--resume {args.resume}") as store:
        run = store.run(store.resolve(args.resume))
    store_path = store.path
    if not run.pytest_args:
        raise UsageError(f"run {run.id} stored no command line to resume")
    argv = _without_options(run.pytest_args, RESUME_REPLACED)
    argv += ["--bt-store", str(store_path), "--bt-resume", run.id, *forwarded_options(args)]
    if run.cwd and Path(run.cwd).is_dir():
        os.chdir(run.cwd)
    print(f"benchtool: resuming run {run.id} of {store_path} in {run.cwd}: pytest {' '.join(argv)}",
          file=sys.stderr)
    return argv + extra


def _without_options(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """``argv`` without ``--opt VALUE`` and ``--opt=VALUE`` for each of ``options``."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in options)):
            kept.append(arg)
    return kept
