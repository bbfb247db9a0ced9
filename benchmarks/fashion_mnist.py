"""Fashion-MNIST: iaprune's default search against heuristics at equal MACs budget.

Every method prunes the same trained baseline to the same MACs budget and gets the same
fine-tuning (the pipeline's ``prune_and_finetune`` with one FinetuneConfig; the data
split and the fine-tuning's data order are fixed, so rows differ only by the pruned
architecture). Searching methods run with 3 search seeds; uniform and torch-pruning are
deterministic and run once. Methods:

* ``iaprune``: the default search (``SearchConfig()``: GP on the budget space, warm
  starts, noise-aware choice);
* ``tpe`` / ``random``: the same space, score and warm starts with Optuna's TPE / random
  sampler (what ``--sampler tpe|random`` gives);
* ``eagleeye``: EagleEye's selection (Li et al., ECCV 2020): random per-layer widths at
  the budget, scored after adaptive BN only, best kept; no warm start;
* ``uniform``: one keep-ratio for every layer, on the budget (L1 filters);
* ``tp-global`` / ``tp-isomorphic``: torch-pruning's global L1 magnitude pruning (and its
  isomorphic variant) stepped until the MACs budget holds.

Results: ``OUT/rows.jsonl`` (resumable), ``OUT/fashion_mnist_runs.csv`` and
``OUT/fashion_mnist_results.md``. ``--smoke`` runs the same code on ``digits`` in seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from common import (
    Rows,
    baseline,
    baseline_config,
    log,
    machine_info,
    mean_std,
    pruned_config,
    run_pool,
)
from torch import nn

from iaprune import ObjectiveConfig, RunConfig, Session
from iaprune.cost import count_macs, count_params
from iaprune.reports import Table, markdown_table
from iaprune.train import finetune

SEARCH = {
    "iaprune": {},
    "tpe": {"sampler": "tpe"},
    "random": {"sampler": "random"},
    "eagleeye": {
        "sampler": "random",
        "tie": "none",
        "warm_start": False,
        "rescore": 0,
        "finetune_steps": 0,
        "distill": 0.0,
    },
    "uniform": {"sampler": "uniform"},
}
METHODS = [*SEARCH, "tp-global", "tp-isomorphic"]
SCORED = {"iaprune", "tpe", "random"}  # methods that take --trial-steps / --trial-distill
DETERMINISTIC = {"uniform", "tp-global", "tp-isomorphic"}
MODELS = {"vgg16": 0.25, "resnet56": 0.375}
# resnet56 at width 0.375 has 6-channel groups that the CPU default --round-to 8 cannot prune
ROUND_TO = {"resnet56": 2}


def tp_prune(model: nn.Module, example: torch.Tensor, budget: float, isomorphic: bool) -> nn.Module:
    """torch-pruning's global L1 pruning, stepped until MACs <= budget x original."""
    import copy

    import torch_pruning as tp

    model = copy.deepcopy(model).eval()
    example = example.to(next(model.parameters()).device)
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=1),
        global_pruning=True,
        isomorphic=isomorphic,
        pruning_ratio=0.95,
        max_pruning_ratio=0.95,
        iterative_steps=200,
        ignored_layers=[last],
    )
    shape = tuple(example.shape[1:])
    base = count_macs(model, shape)
    for _ in range(200):
        if count_macs(model, shape) / base <= budget:
            break
        pruner.step()
    return model


def run_row(task: dict[str, Any]) -> dict[str, Any]:
    """Prune, fine-tune and test one (model, budget, method, seed); returns its row."""
    torch.set_num_threads(task["threads"])
    config = RunConfig.from_dict(task["config"])
    t0 = time.perf_counter()
    session = Session.create(task["dir"], config, overwrite=True)
    base = session.baseline()
    method = task["method"]
    search: dict[str, Any] = {}
    if method.startswith("tp-"):
        pruned = tp_prune(base, session.example_input, task["budget"], method == "tp-isomorphic")
        search_s = time.perf_counter() - t0
        torch.manual_seed(config.seed)  # as Session.prune_and_finetune does
        finetune(pruned, session.train_loader(), session.loaders["val"], config.finetune)
    else:
        result = session.search(base)
        search_s = time.perf_counter() - t0
        search = {
            "trials": result.trials,
            "chosen": result.best_trial,
            "val_score": result.accuracy,
        }
        search["selection"] = result.selection.get("reason", "")
        pruned, _ = session.prune_and_finetune(base, result.spec)
    test = session.test(pruned)["top1"]
    shape = session.input_shape
    return {
        **{k: task[k] for k in ("key", "model", "budget", "method", "seed")},
        "test_top1": test,
        "baseline_top1": task["baseline_top1"],
        "macs_ratio": count_macs(pruned, shape) / count_macs(base, shape),
        "params_ratio": count_params(pruned) / count_params(base),
        "search_seconds": search_s,
        "total_seconds": time.perf_counter() - t0,
        **search,
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/fashion_mnist"))
    p.add_argument("--models", default="vgg16,resnet56")
    p.add_argument("--budgets", default="0.5,0.25")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--baseline-epochs", type=int, default=30)
    p.add_argument("--finetune-epochs", type=int, default=5)
    p.add_argument("--trials", type=int, default=30)
    p.add_argument(
        "--trial-steps",
        type=int,
        default=None,
        help="SGD steps per trial for iaprune/tpe/random (default: SearchConfig's)",
    )
    p.add_argument("--trial-distill", type=float, default=0.0, help="with --trial-steps")
    p.add_argument(
        "--val-batches", type=int, default=None, help="validation batches per trial (default: all)"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (GPU: 6-8)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--smoke", action="store_true", help="digits, tiny settings (a test)")
    a = p.parse_args(argv)
    if a.smoke:
        a.models, a.budgets, a.seeds = "test_vgg", "0.5", "0"
        a.baseline_epochs, a.finetune_epochs, a.trials = 2, 1, 4
    return a


def _baseline(task: dict[str, Any]) -> dict[str, Any]:
    torch.set_num_threads(task["threads"])
    weights, info = baseline(Path(task["dir"]), RunConfig.from_dict(task["config"]))
    return {"model": task["model"], "weights": str(weights), **info}


def baselines(a: argparse.Namespace) -> dict[str, tuple[RunConfig, dict[str, Any]]]:
    """Train (or reload) every model's baseline, in parallel; ``{model: (config, info)}``."""
    dataset = "digits" if a.smoke else "fashion-mnist"
    data = {"data_root": a.data_root} if a.data_root else {}
    configs = {
        m: baseline_config(m, MODELS.get(m, 1.0), dataset, a.baseline_epochs, a.device, **data)
        for m in a.models.split(",")
    }
    jobs = [
        {
            "model": m,
            "dir": str(a.out / f"baseline-{m}"),
            "config": c.to_dict(),
            "threads": 1 if a.jobs > 1 else torch.get_num_threads(),
        }
        for m, c in configs.items()
    ]
    out = {}
    for info in run_pool(_baseline, jobs, a.jobs):
        log(f"{info['model']}: baseline test top-1 {info['test_top1']:.4f}")
        out[info["model"]] = (configs[info["model"]], info)
    return out


def tasks(a: argparse.Namespace, rows: Rows) -> list[dict[str, Any]]:
    """Rows still to run, after training (or reloading) every baseline."""
    score = {}
    if a.trial_steps is not None:
        score = {"finetune_steps": a.trial_steps, "distill": a.trial_distill}
    todo = []
    seeds = [int(s) for s in a.seeds.split(",")]
    for model, (base_cfg, info) in baselines(a).items():
        for budget in (float(b) for b in a.budgets.split(",")):
            for method in a.methods.split(","):
                for seed in seeds:
                    if method in DETERMINISTIC and seed != seeds[0]:
                        continue
                    key = f"{model}_{budget:g}_{method}_s{seed}"
                    if key in rows:
                        continue
                    search = {**(score if method in SCORED else {}), **SEARCH.get(method, {})}
                    cfg = pruned_config(
                        base_cfg,
                        Path(info["weights"]),
                        **search,
                        trials=a.trials,
                        round_to=ROUND_TO.get(model),
                        val_batches=a.val_batches,
                        seed=seed,
                        objective=ObjectiveConfig(max_macs=budget),
                    )
                    todo.append(
                        {
                            "key": key,
                            "model": model,
                            "budget": budget,
                            "method": method,
                            "seed": seed,
                            "dir": str(a.out / "runs" / key),
                            "config": _with_epochs(cfg, a.finetune_epochs).to_dict(),
                            "baseline_top1": info["test_top1"],
                            "threads": 1 if a.jobs > 1 else torch.get_num_threads(),
                        }
                    )
    return todo


def _with_epochs(cfg: RunConfig, epochs: int) -> RunConfig:
    return replace(cfg, finetune=replace(cfg.finetune, epochs=epochs, lr=0.01))


def write_results(a: argparse.Namespace, rows: Rows, seconds: float, ran: int) -> None:
    """CSV of every row and a markdown table of mean +- std per setting."""
    fields = ["model", "budget", "method", "seed", "test_top1", "baseline_top1", "macs_ratio"]
    fields += ["params_ratio", "search_seconds", "total_seconds", "trials", "chosen"]
    ordered = sorted(rows, key=lambda r: (r["model"], -r["budget"], METHODS.index(r["method"])))
    with (a.out / "fashion_mnist_runs.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(ordered)
    headers = ("model", "MACs budget", "method", "seeds", "test top-1 %", "Δ vs baseline pp")
    headers += ("MACs kept", "search s", "total s")
    cells = []
    settings = dict.fromkeys((r["model"], r["budget"], r["method"]) for r in ordered)
    for model, budget, method in settings:
        group = [
            r for r in ordered if (r["model"], r["budget"], r["method"]) == (model, budget, method)
        ]
        acc, sd = mean_std([100 * r["test_top1"] for r in group])
        base = 100 * group[0]["baseline_top1"]
        macs = mean_std([r["macs_ratio"] for r in group])[0]
        search = mean_std([r["search_seconds"] for r in group])[0]
        total = mean_std([r["total_seconds"] for r in group])[0]
        spread = f" ± {sd:.2f}" if len(group) > 1 else ""
        cells.append(
            (model, f"{budget:g}", method, str(len(group)), f"{acc:.2f}{spread}")
            + (f"{acc - base:+.2f}", f"{macs:.3f}", f"{search:.0f}", f"{total:.0f}")
        )
    if ran:  # the machine and settings of the last run that added rows
        env = {**machine_info(a.device), "wall_seconds": round(seconds, 1), "args": vars(a)}
        (a.out / "fashion_mnist_env.json").write_text(json.dumps(env, indent=2, default=str))
    text = markdown_table(Table(headers, cells, align=("l",) * 3 + ("r",) * 6))
    (a.out / "fashion_mnist_results.md").write_text(text + "\n")
    print(text)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    t0 = time.perf_counter()
    rows = Rows(a.out / "rows.jsonl")
    todo = tasks(a, rows)
    log(f"{len(todo)} rows to run ({len(rows.rows)} done) with {a.jobs} job(s)")
    for row in run_pool(run_row, todo, a.jobs):
        rows.add(row)
        log(
            f"{row['key']}: test {row['test_top1']:.4f} (baseline {row['baseline_top1']:.4f}), "
            f"MACs x{row['macs_ratio']:.3f}, {row['total_seconds']:.0f} s"
        )
    write_results(a, rows, time.perf_counter() - t0, len(todo))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
