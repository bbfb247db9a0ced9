"""``iaprune finetune RUN_DIR``: prune a searched configuration, fine-tune, test, report."""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace

from torch import nn

from iaprune.cli._trust import add_trust_arg
from iaprune.errors import IAPruneError
from iaprune.pipeline import Session, load_search_result, write_report
from iaprune.reports import print_table
from iaprune.search import SearchResult

log = logging.getLogger(__name__)


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


def pick_trial(
    result: SearchResult, number: int, session: Session, base: nn.Module
) -> SearchResult:
    """``result`` re-pointed at trial ``number`` (its kept widths, scores from ``base``)."""
    row = next((h for h in result.history if h["number"] == number), None)
    if row is None:
        valid = ", ".join(str(h["number"]) for h in result.history)
        raise IAPruneError(f"trial {number} did not finish in this run; finished: {valid}")
    return replace(
        result,
        spec=session.pruner(base).spec(row["keep"]),
        best_trial=number,
        best_value=row["value"],
        accuracy=row["accuracy"],
        ratios=row["ratios"],
    )


def run(a: argparse.Namespace) -> int:
    """Fine-tune and write report.json (pruned.pt is replaced only when fine-tuning ends).

    A pruned.pt that is already a finished fine-tune of the chosen configuration with the
    run's settings (a run killed while it reported) is reported, not trained again.

    Under ``torchrun --nproc-per-node N`` the fine-tuning is data-parallel over N processes
    with the same global batch; rank 0 writes pruned.pt and the report.
    """
    t0 = time.perf_counter()
    session = Session.open(a.run_dir, trust_code=a.trust_code, lock=True)
    overrides = {"epochs": a.epochs, "sync_bn": a.sync_bn}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        session.config = replace(
            session.config, finetune=replace(session.config.finetune, **overrides)
        )
    result = load_search_result(session.run)
    base = session.finished_baseline_model()  # never trains: the search needed it finished
    if a.trial is not None:
        result = pick_trial(result, a.trial, session, base)
    if session.finetune_done(result.spec):  # a finished stage is never redone
        log.info(
            "stage finetune: pruned.pt is a finished fine-tune of this configuration with "
            "these settings; not training again (--epochs or --trial trains another)"
        )
        if not session.dist.main:
            return 0
        session.restore_finetune_files()
        pruned = session.load_pruned()
    else:
        pruned, history = session.prune_and_finetune(base, result.spec)
        if not session.dist.main:  # under torchrun rank 0 alone tests and reports
            return 0
        session.run.write_json("finetune.json", history)
    report = write_report(session, result, base, pruned, seconds=time.perf_counter() - t0)
    print_table(report)
    return 0
