"""Would a longer score of the two contenders pick what fine-tunes best?

The final choice compares the best warm start and the best searched finalist on their
100-step distillation scores (two each). On resnet56 at 25 % that swapped torch-pruning's
allocation (projected onto the budget; 90.23 / 89.93 % after fine-tuning at seeds 1 / 2)
for searched ones that fine-tuned to 89.11 / 89.32 %. Here the two contenders of finished
searches are scored once more after STEPS distillation steps (one fine-tuning epoch is 422
steps here), same validation images, and the winner printed.
``--full-val`` scores on the whole validation split (6,000 images) instead of the run's
``val_batches`` (2,048 in the benchmark), to see whether more images separate the two.
Usage: python contenders.py RUN_DIR [RUN_DIR ...] [--steps 400] [--full-val]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from iaprune import Session


def contenders(selection: dict) -> tuple[int, int]:
    scores = selection["scores"]
    warm = [n for n, s in scores.items() if s["warm_start"]]
    searched = [n for n, s in scores.items() if not s["warm_start"]]
    return tuple(int(max(ns, key=lambda n: scores[n]["first"])) for ns in (warm, searched))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--full-val", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    for run in a.runs:
        result = json.loads((run / "search.json").read_text())
        selection = result["selection"]
        session = Session.open(run)
        base = session.baseline()
        pruner = session.pruner(base)
        trial = session.evaluator(base, pruner)
        long = trial.variant(
            finetune_steps=a.steps, distill=1.0, train_batches=session.batches("train", a.steps)
        )
        if a.full_val:
            long.val_batches = session.batches("val", 10**9)
        keeps = {h["number"]: h["keep"] for h in result["history"]}
        out = {"run": run.name, "chosen": selection["chosen"], "steps": a.steps}
        out["val_images"] = long.val_size
        for role, number in zip(("warm", "searched"), contenders(selection)):
            out[role] = {"trial": number, "score": long(keeps[number]).accuracy}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
