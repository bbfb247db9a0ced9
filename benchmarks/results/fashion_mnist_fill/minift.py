"""Does a score that mimics the fine-tune's recipe rank the contenders like the fine-tune?

The distillation score (constant lr 0.01, KD from the unpruned model) preferred the GP's
picks on resnet56 at 25 % by 0.6-1.8 pp, on 2,048 or 6,000 validation images, after 100 or
400 steps, while the fine-tune (cross-entropy, weight decay, cosine annealing to 0) put
torch-pruning's projected allocation ahead. Here both contenders of a finished search take
STEPS steps of the fine-tune's own recipe (SGD lr 0.01, momentum 0.9, weight decay 5e-4,
cosine to 0, cross-entropy, the run's augmented training batches), BatchNorm recalibration,
and are validated on the whole validation split. Nothing is written into the run directories.
``--test`` also tests each scored model (the benchmark's test split), which tells a
disagreement between validation and test from one between this score and the fine-tune.
Usage: python minift.py RUN_DIR [...] [--steps 400] [--test]
"""

from __future__ import annotations

import argparse
import json
from itertools import cycle, islice
from pathlib import Path

import torch
from torch import nn

from contenders import contenders  # the script beside this one (its directory is on sys.path)
from iaprune import Session
from iaprune.train.bn_recalibrate import recalibrate_bn
from iaprune.train.loop import evaluate


def score(
    session: Session, pruner, keep: dict, steps: int, train, calib, val, test: bool
) -> dict:
    model = pruner.prune(keep)
    recalibrate_bn(model, calib, steps=len(calib))
    torch.manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    model.train()
    for x, y in islice(cycle(train), steps):
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        sched.step()
    recalibrate_bn(model, calib, steps=len(calib))
    out = {"score": float(evaluate(model, val, desc="validate")["top1"])}
    if test:  # the test split too, to tell a val/test disagreement from a recipe one
        out["test"] = float(session.test(model)["top1"])
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--test", action="store_true", help="also test the scored models")
    a = p.parse_args()
    torch.set_num_threads(1)
    for run in a.runs:
        result = json.loads((run / "search.json").read_text())
        session = Session.open(run)
        base = session.baseline()
        pruner = session.pruner(base)
        train = session.batches("train", a.steps)
        calib = session.batches("train_eval", session.config.search.bn_batches)
        val = session.batches("val", 10**9)
        keeps = {h["number"]: h["keep"] for h in result["history"]}
        out = {"run": run.name, "chosen": result["selection"]["chosen"], "steps": a.steps}
        for role, number in zip(("warm", "searched"), contenders(result["selection"])):
            value = score(session, pruner, keeps[number], a.steps, train, calib, val, a.test)
            out[role] = {"trial": number, **value}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
