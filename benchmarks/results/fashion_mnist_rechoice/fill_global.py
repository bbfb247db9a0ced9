"""Does topping torch-pruning's warm-start allocation up onto the budget help? (resnet56, 25 %)

The ``global`` warm start is the first torch-pruning step that meets the budget, rounded to
the space's widths; on the Fashion-MNIST resnet56 at 25 % it keeps 0.225 of the MACs. Here
the same allocation is projected onto the budget (``BudgetProjection.project`` of its
per-group shares: scaled up, then filled) and both are fine-tuned with the run's settings
(group_l1 filters, 1 epoch) at seeds 0-2. Usage: python fill_global.py RUN_DIR [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp

import torch

from iaprune import Session
from iaprune.cost import count_macs
from iaprune.pruning import Pruner, apply_spec
from iaprune.search.builder import make_space
from iaprune.search.heuristics import torch_pruning_allocation


def allocations(session: Session, pruner: Pruner) -> dict[str, dict[str, int]]:
    space = make_space(pruner, session.input_shape, session.config.search, round_to=session.round_to)
    # the stepped widths, as the warm start was when this ran (now it is the filled one)
    keep = torch_pruning_allocation(pruner, space.projection, onto_budget=False)
    assert keep is not None
    widths = {g.name: g.channels for g in pruner.groups}
    filled = space.projection.project({n: keep[n] / widths[n] for n in keep})
    return {"global": keep, "global-filled": filled}


def run(task: tuple[str, str, int]) -> dict:
    run_dir, name, seed = task
    torch.set_num_threads(1)
    session = Session.open(run_dir)
    base = session.baseline()
    pruner = session.pruner(base)
    keep = allocations(session, pruner)[name]
    pruned = apply_spec(base, session.example_input, pruner.spec(keep))
    session.finetune(pruned, seed=seed)
    shape = session.input_shape
    return {
        "allocation": name,
        "seed": seed,
        "test_top1": session.test(pruned)["top1"],
        "macs_ratio": count_macs(pruned, shape) / count_macs(base, shape),
        "keep": keep,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    tasks = [(a.run_dir, n, s) for s in (0, 1, 2) for n in ("global", "global-filled")]
    with mp.get_context("spawn").Pool(a.jobs) as pool:
        for out in pool.imap_unordered(run, tasks):
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
