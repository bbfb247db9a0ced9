"""Do the contenders keep their order with a longer fine-tune?

On resnet56 at 25 % the GP's picks (seeds 1, 2) out-scored torch-pruning's projected
allocation after 100 distillation steps, yet fine-tuned 0.6-1.1 pp worse with the
benchmark's 1 epoch; on vgg16 at 50 % (seed 2) the pick fine-tuned 0.26 pp better. Here the
same two candidates of a finished search (the best warm start and the chosen searched
trial) are fine-tuned for EPOCHS epochs (lr 0.01, cosine, as the benchmark) at the row's seed,
with the run's filters, and tested (the validation top-1 of every epoch is kept too). Nothing is written into the run directories.
Usage: python longer.py RUN_DIR:TRIAL:SEED [...] [--epochs 3] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
from dataclasses import replace
from pathlib import Path

import torch

from iaprune import Session
from iaprune.pruning import apply_spec


def run(task: tuple[str, int, int, int]) -> dict:
    run_dir, number, seed, epochs = task
    torch.set_num_threads(1)
    session = Session.open(run_dir)
    # only the epoch count changes (the data and loaders do not depend on it)
    session.config = replace(session.config, finetune=replace(session.config.finetune, epochs=epochs))
    base = session.baseline()
    pruner = session.pruner(base)
    trials = json.loads((Path(run_dir) / "search.json").read_text())["history"]
    keep = next(h["keep"] for h in trials if h["number"] == number)
    pruned = apply_spec(base, session.example_input, pruner.spec(keep))
    history = session.finetune(pruned, seed=seed)
    return {
        "val_top1": [round(e["val_top1"], 4) for e in history.epochs],
        "run": Path(run_dir).name,
        "trial": number,
        "seed": seed,
        "epochs": epochs,
        "test_top1": session.test(pruned)["top1"],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("tasks", nargs="+", help="RUN_DIR:TRIAL:SEED")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    tasks = []
    for t in a.tasks:
        run_dir, number, seed = t.rsplit(":", 2)
        tasks.append((run_dir, int(number), int(seed), a.epochs))
    with mp.get_context("spawn").Pool(a.jobs) as pool:
        for out in pool.imap_unordered(run, tasks):
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
