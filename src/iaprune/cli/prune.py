"""``iaprune prune``: baseline -> search -> prune best -> fine-tune -> test -> report."""

from __future__ import annotations

import argparse

from iaprune.cli._args import add_pipeline_args, default_run_dir, explicit_paths, run_config
from iaprune.cli._trust import add_trust_arg
from iaprune.pipeline import run_prune
from iaprune.reports import print_table


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    p = sub.add_parser("prune", help="run the whole pipeline (default: digits, small VGG16)")
    add_pipeline_args(p)
    add_trust_arg(p)
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    """Execute the pipeline and print the summary table."""
    run_dir = default_run_dir(a)
    report = run_prune(
        run_dir,
        run_config(a),
        resume=a.resume,
        overwrite=a.overwrite,
        trust_code=a.trust_code,
        explicit=explicit_paths(a),
    )
    if report.get("worker"):
        print(f"joined study {report['study']!r} as a worker; its creator makes the final choice")
        return 0
    print_table(report)
    print(f"run directory: {run_dir}")
    return 0
