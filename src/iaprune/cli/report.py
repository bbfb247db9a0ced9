"""``iaprune report RUN_DIR``: render report.html and report.md for a finished run."""

from __future__ import annotations

import argparse

from iaprune.reports.render import FORMATS, write_reports


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "report",
        help="write report.html (self-contained) and report.md with plots for a finished run",
    )
    p.add_argument("run_dir")
    p.add_argument(
        "--format",
        dest="formats",
        action="append",
        choices=FORMATS,
        help="only this format (repeatable; default: html and md)",
    )
    p.add_argument("--no-plots", action="store_true", help="write the tables only")
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    """Write the reports and print the paths written, one per line."""
    for path in write_reports(a.run_dir, formats=a.formats or FORMATS, plots=not a.no_plots):
        print(path)
    return 0
