"""``iaprune finetune RUN_DIR``: prune a searched configuration, fine-tune, test, report."""

from __future__ import annotations

import argparse

from iaprune.cli._trust import add_trust_arg
from iaprune.pipeline import run_finetune
from iaprune.reports import print_table


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    p = sub.add_parser("finetune", help="fine-tune the chosen (or any) searched configuration")
    p.add_argument("run_dir")
    p.add_argument("--trial", type=int, help="fine-tune this trial (e.g. a Pareto point)")
    p.add_argument("--epochs", type=int, help="override the run's fine-tuning epochs")
    p.add_argument(
        "--sync-bn",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override the run's --sync-bn (under torchrun: BatchNorm over the global batch)",
    )
    add_trust_arg(p)
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    """Fine-tune and print the report (:func:`iaprune.pipeline.run_finetune`).

    Under ``torchrun --nproc-per-node N`` the fine-tuning is data-parallel over N processes
    with the same global batch; rank 0 writes pruned.pt and prints the report.
    """
    report = run_finetune(
        a.run_dir, trial=a.trial, epochs=a.epochs, sync_bn=a.sync_bn, trust_code=a.trust_code
    )
    if report is not None:
        print_table(report)
    return 0
