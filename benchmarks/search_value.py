"""Does the search add value beyond its warm starts? Aggressive MACs budgets, paired seeds.

Every method prunes the same trained baseline to the same MACs budget with the same
filter criterion (group-L1, the default) and the same rounding, then gets the same
fine-tuning; the seed drives the search and the fine-tune's data order and augmentation.
The protocol (settings, seeds, methods, endpoint) is in benchmarks/README.md (issue 25).
Methods:

* ``iaprune``: the default search at ``--max-macs B`` (GP on the tied budget space,
  warm starts, finalists);
* ``iaprune-local``: the same with ``--space local`` (a trust region of one move per
  group around the best warm start);
* ``tpe``: the default search with Optuna's TPE sampler (a search control);
* ``uniform`` / ``tp-global`` / ``knapsack`` / ``ranking`` / ``inner``: one allocation
  projected onto the budget (the same share everywhere; torch-pruning's global L1 pruning;
  the MACs knapsack; the one-shot global ranking; the residual streams kept whole and the
  inner convs pruned uniformly, resnet56 only): the warm starts iaprune itself enqueues.

Rows with the same widths and seed share one fine-tune (deterministic): ``shared_finetune``
names the row whose fine-tune a row reuses. Results: ``OUT/rows.jsonl`` (resumable),
``OUT/search_value_runs.csv`` and ``OUT/search_value_results.md``. ``--smoke`` runs the
same code on ``synthetic`` 32x32 images (a test).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from common import (
    Rows,
    baseline,
    baseline_config,
    commit_id,
    heuristic_keep,
    loadavg,
    log,
    machine_info,
    mean_drop,
    mean_std,
    run_benchmark,
)

from iaprune import ObjectiveConfig, RunConfig, Session
from iaprune.cost import count_macs
from iaprune.pruning import PruningSpec, apply_spec
from iaprune.reports import Table, markdown_table
from iaprune.search import AllocationSpace, make_space

METHODS = [
    "iaprune",
    "iaprune-local",
    "tpe",
    "uniform",
    "tp-global",
    "knapsack",
    "ranking",
    "inner",
]
RESIDUAL = {"resnet56"}  # models with residual streams: the only ones "inner" applies to
SEARCHES = {"iaprune": {}, "iaprune-local": {"space": "local"}, "tpe": {"sampler": "tpe"}}
MODELS = {"vgg16": 0.25, "resnet56": 0.375}
BUDGETS = {"vgg16": 0.15, "resnet56": 0.25}
ROUND_TO = {"resnet56": 2}  # 6-channel groups at width 0.375; vgg16: the CPU default (8)


def _heuristic(session: Session, base: torch.nn.Module, method: str) -> PruningSpec:
    """The heuristic's widths projected onto the run's MACs budget."""
    pruner = session.pruner(base)
    space = make_space(
        pruner, session.input_shape, session.config.search, round_to=session.round_to
    )
    assert isinstance(space, AllocationSpace)
    return pruner.spec(heuristic_keep(pruner, space, method))


def _choose(task: dict[str, Any], config: RunConfig) -> tuple[Session, torch.nn.Module, dict]:
    """Run the method's selection; returns the session, the baseline and what was chosen."""
    session = Session.create(Path(task["dir"]), config, overwrite=True)
    base = session.baseline()
    if task["method"] in SEARCHES:
        result = session.search(base)
        assert result is not None
        selection = result.selection or {}
        chosen = selection.get("scores", {}).get(str(result.best_trial), {})
        return (
            session,
            base,
            {
                "spec": result.spec,
                "val_score": chosen.get("trial"),
                "warm_start": chosen.get("warm_start"),
                "trials": result.trials,
            },
        )
    return session, base, {"spec": _heuristic(session, base, task["method"])}


def run_row(task: dict[str, Any], finetunes: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """Select, fine-tune and test one (model, budget, method, seed)."""
    torch.set_num_threads(task["threads"])
    config = RunConfig.from_dict(task["config"])
    t0 = time.perf_counter()
    session, base, chosen = _choose(task, config)
    spec: PruningSpec = chosen["spec"]
    search_s = time.perf_counter() - t0
    widths = json.dumps(dict(sorted(spec.keep.items())))
    shared = finetunes.get(f"{task['model']}|{task['seed']}|{widths}")
    pruned = apply_spec(base, session.example_input, spec)
    if shared is None:
        session.finetune(pruned, seed=task["seed"])
        test = session.test(pruned)["top1"]
    else:  # the same widths and seed fine-tune to the same weights
        test = shared["test_top1"]
    shape = session.input_shape
    return {
        **{k: task[k] for k in ("key", "model", "budget", "method", "seed")},
        "test_top1": test,
        "baseline_top1": task["baseline_top1"],
        "macs_ratio": count_macs(pruned, shape) / count_macs(base, shape),
        "val_score": chosen.get("val_score"),
        "chosen_warm_start": chosen.get("warm_start"),
        "trials": chosen.get("trials"),
        "widths": widths,
        "shared_finetune": None if shared is None else shared["key"],
        "search_seconds": search_s,
        "total_seconds": time.perf_counter() - t0,
        "loadavg": loadavg(),
        "threads": task["threads"],
        "commit": task["commit"],
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter, allow_abbrev=False
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/search_value"))
    p.add_argument("--models", default="resnet56,vgg16")
    p.add_argument("--seeds", default="0,1,2,3,4,5,6,7")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--baseline-epochs", type=int, default=20)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--data-root", default=None)
    p.add_argument("--smoke", action="store_true", help="synthetic, tiny settings (a test)")
    p.add_argument("--report-only", action="store_true", help="write the CSV and table of OUT")
    p.add_argument("--baselines-only", action="store_true", help="train the baselines, no row")
    a = p.parse_args(argv)
    if a.smoke:
        a.models, a.seeds = "vgg11", "0"
        a.baseline_epochs, a.finetune_epochs, a.trials = 1, 1, 3
    return a


def _row_config(
    a: argparse.Namespace, base_cfg: RunConfig, weights: Path, task: dict[str, Any]
) -> RunConfig:
    search = replace(
        base_cfg.search,
        trials=a.trials,
        seed=task["seed"],
        round_to=ROUND_TO.get(task["model"]),
        objective=ObjectiveConfig(max_macs=task["budget"]),
        **SEARCHES.get(task["method"], {}),
        **({"rescore": 0} if a.smoke else {}),
    )
    finetune = replace(base_cfg.finetune, epochs=a.finetune_epochs, lr=0.01)
    return replace(base_cfg, checkpoint=str(weights), search=search, finetune=finetune)


def tasks(a: argparse.Namespace, rows: Rows) -> list[dict[str, Any]]:
    """Rows still to run: seed by seed, every method of a seed together."""
    dataset = "synthetic" if a.smoke else "fashion-mnist"
    data = {"data_root": a.data_root} if a.data_root else {}
    commit = commit_id()
    todo = []
    for model in a.models.split(","):
        base_cfg = baseline_config(
            model,
            MODELS.get(model, 0.25),
            dataset,
            a.baseline_epochs,
            "cpu",
            ROUND_TO.get(model),
            **data,
        )
        weights, info = baseline(a.out / f"baseline-{model}", base_cfg)
        log(f"{model}: baseline test top-1 {info['test_top1']:.4f}")
        budget = BUDGETS.get(model, 0.5)
        for seed in () if a.baselines_only else (int(s) for s in a.seeds.split(",")):
            for method in a.methods.split(","):
                key = f"{model}_{budget:g}_{method}_s{seed}"
                if key in rows or (method == "inner" and model not in RESIDUAL):
                    continue
                task = {"key": key, "model": model, "budget": budget, "method": method}
                task.update(seed=seed, dir=str(a.out / "runs" / key), commit=commit)
                task.update(baseline_top1=info["test_top1"], threads=torch.get_num_threads())
                task["config"] = _row_config(a, base_cfg, weights, task).to_dict()
                todo.append(task)
    return todo


FIELDS = [
    "model",
    "budget",
    "method",
    "seed",
    "test_top1",
    "baseline_top1",
    "macs_ratio",
    "val_score",
    "chosen_warm_start",
    "shared_finetune",
    "search_seconds",
    "total_seconds",
    "loadavg",
    "threads",
    "commit",
    "widths",
]


def write_results(a: argparse.Namespace, rows: Rows, seconds: float, ran: int) -> None:
    """CSV of every row and a markdown table of mean +- std per setting and method."""
    order = {m: i for i, m in enumerate(METHODS)}
    ordered = sorted(rows, key=lambda r: (r["model"], order[r["method"]], r["seed"]))
    with (a.out / "search_value_runs.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(ordered)
    headers = ("model", "MACs budget", "method", "seeds", "test top-1 %", "Δ vs baseline pp")
    headers += ("MACs kept", "chose a warm start")
    cells = []
    for model, budget, method in dict.fromkeys(
        (r["model"], r["budget"], r["method"]) for r in ordered
    ):
        group = [r for r in ordered if (r["model"], r["method"]) == (model, method)]
        acc, sd = mean_std([100 * r["test_top1"] for r in group])
        warm = sum(r.get("chosen_warm_start") is not None for r in group)
        cells.append(
            (model, f"{budget:g}", method, str(len(group)), f"{acc:.2f} ± {sd:.2f}")
            + (f"{mean_drop(group):+.2f}", f"{mean_std([r['macs_ratio'] for r in group])[0]:.3f}")
            + (f"{warm}/{len(group)}" if method in SEARCHES else "",)
        )
    if ran:
        env = {**machine_info("cpu"), "wall_seconds": round(seconds, 1), "args": vars(a)}
        (a.out / "search_value_env.json").write_text(json.dumps(env, indent=2, default=str))
    text = markdown_table(Table(headers, cells, align=("l",) * 3 + ("r",) * 5))
    (a.out / "search_value_results.md").write_text(text + "\n")
    print(text)


def _describe(r: dict[str, Any]) -> str:
    return (
        f"test {r['test_top1']:.4f} (baseline {r['baseline_top1']:.4f}), "
        f"MACs x{r['macs_ratio']:.3f}, {r['total_seconds']:.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(parse(argv), tasks, run_row, _describe, write_results)


if __name__ == "__main__":
    raise SystemExit(main())
