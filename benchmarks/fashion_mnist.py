"""Fashion-MNIST: iaprune's default search against heuristics at equal MACs budget.

Every method prunes the same trained baseline to the same MACs budget and gets the same
fine-tuning (one FinetuneConfig, the same data split). Every method runs every seed: the
seed drives the search and the fine-tune's data order and augmentation, so the spread of
a deterministic method (uniform, torch-pruning) is the fine-tuning's own noise, and a
searching method's spread adds the search's. Methods:

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
    mean_drop,
    mean_std,
    pruned_config,
    run_pool,
)
from torch import nn

from iaprune import ObjectiveConfig, RunConfig, Session
from iaprune.cost import count_macs, count_params
from iaprune.pruning import apply_spec
from iaprune.reports import Table, markdown_table

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
        "importance": "l1",
    },
    "uniform": {"sampler": "uniform", "importance": "l1"},
}
METHODS = [*SEARCH, "tp-global", "tp-isomorphic"]
SCORED = {"iaprune", "tpe", "random"}  # methods that take --trial-steps / --trial-distill
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
    """Prune, fine-tune and test one (model, budget, method, seed); returns its row.

    The seed drives the search (``search.seed``) and the fine-tune (its data order and
    augmentation); the data split is the same for every row. A run directory that holds
    a finished search (an earlier protocol's row) is resumed: the search is kept and
    only the fine-tune runs, and the row says so (``search_reused``).
    """
    torch.set_num_threads(task["threads"])
    config = RunConfig.from_dict(task["config"])
    t0 = time.perf_counter()
    finished = _finished_search(Path(task["dir"]), config)
    reuse = finished is not None
    session = finished or Session.create(task["dir"], config, overwrite=True)
    base = session.baseline()
    method = task["method"]
    search: dict[str, Any] = {}
    if method.startswith("tp-"):
        pruned = tp_prune(base, session.example_input, task["budget"], method == "tp-isomorphic")
        search_s = time.perf_counter() - t0
    else:
        result = session.search_done() or session.search(base)
        search_s = time.perf_counter() - t0
        if reuse and task.get("search_seconds") is not None:
            search_s = task["search_seconds"]  # the reused search's own time
        search = {
            "trials": result.trials,
            "chosen": result.best_trial,
            "val_score": result.accuracy,
            "selection": result.selection.get("reason", ""),
            "search_reused": reuse,
        }
        pruned = apply_spec(base, session.example_input, result.spec)
    t1 = time.perf_counter()
    seed = task["seed"]
    session.finetune(pruned, seed=seed)
    test = session.test(pruned)["top1"]
    shape = session.input_shape
    return {
        **{k: task[k] for k in ("key", "model", "budget", "method", "seed")},
        "finetune_seed": seed,
        "test_top1": test,
        "baseline_top1": task["baseline_top1"],
        "macs_ratio": count_macs(pruned, shape) / count_macs(base, shape),
        "params_ratio": count_params(pruned) / count_params(base),
        "search_seconds": search_s,
        "total_seconds": search_s + time.perf_counter() - t1,
        **search,
    }


def _finished_search(run_dir: Path, config: RunConfig) -> Session | None:
    """The run in ``run_dir`` when it holds a finished search of ``config``, else None.

    The paths and study name a run records for itself are left out of the comparison.
    """
    if not (run_dir / "search.json").is_file():
        return None
    session = Session.open(run_dir)

    def settings(c: RunConfig) -> dict[str, Any]:
        d = c.to_dict()
        d.pop("checkpoint"), d.pop("data_root"), d["search"].pop("study_name")
        return d

    if settings(session.config) != settings(config) or session.search_done() is None:
        return None
    return session


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter, allow_abbrev=False
    )
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
                    key = f"{model}_{budget:g}_{method}_s{seed}"
                    old = rows.rows.get(key)
                    if old is not None and old.get("finetune_seed", 0) == seed:
                        continue  # rows before finetune_seed was recorded fine-tuned with 0
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
                            "search_seconds": (old or {}).get("search_seconds"),
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
        macs = mean_std([r["macs_ratio"] for r in group])[0]
        search = mean_std([r["search_seconds"] for r in group])[0]
        total = mean_std([r["total_seconds"] for r in group])[0]
        spread = f" ± {sd:.2f}" if len(group) > 1 else ""
        cells.append(
            (model, f"{budget:g}", method, str(len(group)), f"{acc:.2f}{spread}")
            + (f"{mean_drop(group):+.2f}", f"{macs:.3f}", f"{search:.0f}", f"{total:.0f}")
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
