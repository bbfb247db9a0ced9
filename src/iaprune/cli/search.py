"""``iaprune search``: baseline (if needed) and the search only; writes search.json/spec.json."""

from __future__ import annotations

import argparse

from rich.console import Console

from iaprune.cli._args import add_pipeline_args, default_run_dir, explicit_paths, run_config
from iaprune.cli._trust import add_trust_arg
from iaprune.pipeline import run_search_stages


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    p = sub.add_parser("search", help="search per-layer widths without fine-tuning")
    add_pipeline_args(p)
    add_trust_arg(p)
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    """Run or resume the search and print the best configuration."""
    run_dir = default_run_dir(a)
    done = run_search_stages(
        run_dir,
        run_config(a),
        resume=a.resume,
        overwrite=a.overwrite,
        trust_code=a.trust_code,
        explicit=explicit_paths(a),
    )
    result = done.result
    if result is None and not done.joined:  # under torchrun: rank 0 searches
        return 0
    console = Console()
    if result is None:
        console.print(
            f"joined study {done.study!r} as a worker; its creator makes the final choice"
        )
        return 0
    console.print(
        f"best trial {result.best_trial} of {result.trials}: val accuracy "
        f"{result.accuracy:.4f}, MACs ratio {result.ratios['macs']:.3f}"
    )
    for name, (orig, kept) in result.spec.channels().items():
        console.print(f"  {name:40s} {orig:5d} -> {kept:5d}")
    console.print(f"run directory: {run_dir} (next: iaprune finetune {run_dir})")
    return 0
