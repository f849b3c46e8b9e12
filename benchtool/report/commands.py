"""``benchtool report RUN_ID -o report.html [--compare RUN_ID]``: the ``report`` plugin (entry point
``report``), which adds the command; the renderer is imported when it runs."""

from __future__ import annotations

import argparse

from benchtool import hookimpl
from benchtool.commands import Commands, store_option
from benchtool.results import check_writable, write_text_atomically


def _configure_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN_ID", help="a run id (or latest, latest~N) or a --bt-json file")
    parser.add_argument("-o", "--output", metavar="PATH", default="report.html",
                        help="where to write (default: report.html)")
    parser.add_argument("--compare", metavar="RUN_ID",
                        help="overlay a baseline run (or --bt-json file) and show changes against it")
    store_option(parser, reads=True)
    parser.add_argument("--tol", action="append", default=[], metavar="METRIC=TOL",
                        help="tolerance used to colour changes (as in benchtool compare)")
    parser.add_argument("--direction", action="append", default=[], metavar="METRIC=higher|lower|none",
                        help="which way a metric is better (as in benchtool compare)")


@hookimpl
def benchtool_register_commands(commands: Commands) -> None:
    commands.add("report", "write a self-contained HTML report (leaderboards and figures) of a stored run",
                 report, _configure_report)


def report(args: argparse.Namespace, extra: list[str]) -> int:
    from benchtool.report.html import render_report
    from benchtool.comparison import Policies
    from benchtool.store.load import load_result_set

    policies = Policies.from_args(args.tol, args.direction)
    output = check_writable(args.output, "-o", "report.html")  # before reading or rendering anything
    results = load_result_set(args.run, args.store)
    baseline = load_result_set(args.compare, args.store) if args.compare else None
    write_text_atomically(output, render_report(results, baseline, policies))
    stores = sorted({s.store for s in (results, baseline) if s is not None and s.store})
    source = "".join(f" from store {path}" for path in stores)
    print(f"report written to {output} ({output.stat().st_size // 1024} KiB){source}")
    return 0
