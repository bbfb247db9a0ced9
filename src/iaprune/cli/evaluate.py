"""``iaprune evaluate RUN_DIR``: reload the pruned model and measure it again."""

from __future__ import annotations

import argparse
import json

from iaprune.cli._trust import add_trust_arg
from iaprune.cost import measure_cost
from iaprune.session import Session


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    p = sub.add_parser("evaluate", help="reload a run's pruned model; accuracy and costs")
    p.add_argument("run_dir")
    p.add_argument("--split", default="test", choices=("test", "val"))
    p.add_argument("--baseline", action="store_true", help="evaluate the unpruned model instead")
    p.add_argument("--latency", action="store_true", help="also measure latency")
    add_trust_arg(p)
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    """Print accuracy and costs as JSON."""
    from iaprune.train import evaluate

    session = Session.open(a.run_dir, trust_code=a.trust_code)
    model = session.finished_baseline_model() if a.baseline else session.load_pruned()
    metrics = evaluate(model, session.loaders[a.split], desc=a.split)
    cost = measure_cost(model, session.input_shape, latency=a.latency, timing=session.config.cost)
    out = {
        "split": a.split,
        "model": "baseline" if a.baseline else "pruned",
        **metrics,
        **{k: v for k, v in cost.to_dict().items() if v is not None},
    }
    print(json.dumps(out, indent=2, default=str))
    return 0
