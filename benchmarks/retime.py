"""Time a finished search's chosen model again, A/B against the unpruned model.

A check for a latency-budget row whose timing may have been disturbed (for example by
other work on the machine): each ``RUN`` is a run directory holding the search's
``spec.json`` and the session that chose it (its baseline weights and its timing
settings). The chosen widths are applied to the baseline and timed A/B against it on the
run's target by the final timing of ``latency_budget.py`` (:func:`latency_budget.final_timing`),
``--repeats`` times. Nothing is written:
the printed ratios go into benchmarks/README.md beside the row they check, which stays as
it was measured.

    python retime.py results/latency_budget_v3_resnet56/runs/KEY/macs3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from latency_budget import final_timing

from iaprune import Session
from iaprune.pruning import PruningSpec, apply_spec


def retime(run: Path, repeats: int) -> list[tuple[float, float, float]]:
    """The pruned/unpruned latency ratio (value, low, high) of ``run``'s spec, ``repeats`` times."""
    session = Session.open(run)
    base = session.baseline()
    spec = PruningSpec.load(run / "spec.json")
    pruned = apply_spec(base, session.example_input, spec)
    out = []
    for _ in range(repeats):
        timed = final_timing(session, base, pruned)
        out.append(
            (timed["latency_ratio"], timed["latency_ratio_low"], timed["latency_ratio_high"])
        )
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads (timing has its own)")
    args = p.parse_args(argv)
    missing = [run for run in args.runs if not (run / "spec.json").is_file()]
    if missing:  # every run is checked before the first is timed
        p.error(f"{missing[0]}: no spec.json (not a finished search's run directory)")
    torch.set_num_threads(args.threads)
    for run in args.runs:
        for value, low, high in retime(run, args.repeats):
            print(f"{run}: latency ratio {value:.3f} [{low:.3f}, {high:.3f}]", flush=True)


if __name__ == "__main__":
    main()
