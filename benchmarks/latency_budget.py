"""Fashion-MNIST at a *measured* latency budget: is iaprune more accurate at the same speed?

Every method prunes the same trained baseline so that the pruned model's latency on the
target (ONNX Runtime, batch 32, 1 thread, this CPU), timed A/B against the unpruned model,
is at most ``budget`` of the unpruned model's; every method then gets the same fine-tuning.
The protocol (settings, seeds, methods, endpoint) is in benchmarks/README.md. Methods:

* ``iaprune``: the default with ``--max-latency B`` (GP on the latency-projected space,
  warm starts uniform / torch-pruning global / knapsack, finalists, A/B re-fit);
* ``iaprune-macs``: the default MACs-budget search, its MACs budget ``M`` starting at ``B``
  and lowered to ``M * T / high`` until the chosen model's measured upper bound ``high``
  meets ``T = B * (1 - GUARD)``, the target every other method's re-fit aims at
  (at most :data:`MACS_SEARCHES` searches);
* ``uniform`` / ``tp-global`` / ``knapsack``: one allocation (the same share everywhere;
  torch-pruning's global L1 pruning; the latency-aware knapsack) projected onto the
  latency table's prediction, then timed A/B and re-projected like iaprune's choice.

Rows with the same widths and seed share one fine-tune (deterministic): ``shared_finetune``
names the row whose fine-tune a row reuses. Results: ``OUT/rows.jsonl`` (resumable),
``OUT/latency_budget_runs.csv``, ``OUT/latency_budget_results.md`` and
``OUT/latency_budget.png``. ``--smoke`` runs the same code on ``synthetic`` 32x32 images
(a test).
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
from paired import table as paired_table
from torch import nn

from iaprune import ObjectiveConfig, RunConfig, Session
from iaprune.cost import CompareSettings, compare_latency, count_macs
from iaprune.pruning import PruningSpec, apply_spec
from iaprune.reports import Table, markdown_table
from iaprune.search import (
    AllocationSpace,
    ab_measure,
    fit_measured,
    latency_predictors,
    make_space,
)
from iaprune.search.latency_fit import GUARD

METHODS = ["iaprune", "iaprune-macs", "uniform", "tp-global", "knapsack"]
HEURISTICS = {"uniform", "tp-global", "knapsack"}
MODELS = {"vgg16": 0.25, "resnet56": 0.375}
ROUND_TO = {"resnet56": 2}  # 6-channel groups at width 0.375; vgg16: the backend's multiple
MACS_SEARCHES = 4
FINAL_TIMING_SECONDS = 20.0


def _heuristic_keep(session: Session, base: nn.Module, method: str) -> tuple[dict, Any]:
    """The heuristic's widths on the predicted latency budget, and the space's projection."""
    pruner = session.pruner(base)
    table = session.latency_table(base, pruner)
    space = make_space(
        pruner,
        session.input_shape,
        session.config.search,
        round_to=session.round_to,
        predictors=latency_predictors(table),
    )
    assert isinstance(space, AllocationSpace)
    return heuristic_keep(pruner, space, method), (pruner, space.projection)


def _choose(task: dict[str, Any], config: RunConfig) -> tuple[Session, nn.Module, dict]:
    """Run the method's selection; returns the session, the baseline and what was chosen."""
    method, budget = task["method"], task["budget"]
    run_dir = Path(task["dir"])
    if method == "iaprune-macs":
        return _macs_search(task, config)
    session = Session.create(run_dir, config, overwrite=True)
    base = session.baseline()
    if method == "iaprune":
        result = session.search(base)
        assert result is not None
        fit = result.latency_fit
        return session, base, {"spec": result.spec, "fit": fit, "trials": result.trials}
    keep, (pruner, projection) = _heuristic_keep(session, base, method)
    measure = ab_measure(pruner, session.input_shape, config.cost.timing, "latency")
    fit = fit_measured(keep, projection, "latency", measure).to_dict()
    assert budget == projection.budgets["latency"]
    return session, base, {"spec": pruner.spec(fit["attempts"][fit["chosen"]]["keep"]), "fit": fit}


def _macs_search(task: dict[str, Any], config: RunConfig) -> tuple[Session, nn.Module, dict]:
    """The MACs-budget search with its budget lowered until the measured latency fits."""
    target = task["budget"] * (1 - GUARD)
    macs = task["budget"]
    tries = []
    for n in range(MACS_SEARCHES):
        objective = ObjectiveConfig(max_macs=min(1.0, macs))
        cfg = replace(config, search=replace(config.search, objective=objective))
        session = Session.create(Path(task["dir"]) / f"macs{n}", cfg, overwrite=True)
        base = session.baseline()
        result = session.search(base)
        assert result is not None
        measure = ab_measure(session.pruner(base), session.input_shape, cfg.cost.timing, "latency")
        interval = measure(result.spec.keep)
        tries.append({"max_macs": macs, "ratio": interval.value, "high": interval.high})
        log(f"{task['key']}: MACs budget {macs:.4f} -> latency {interval.value:.3f}")
        if interval.high <= target:
            break
        macs *= target / interval.high
    chosen = {"spec": result.spec, "fit": {"macs_searches": tries}, "trials": result.trials}
    return session, base, chosen


def final_timing(session: Session, base: nn.Module, pruned: nn.Module) -> dict[str, Any]:
    """The final model timed A/B against the unpruned one on the target; its MACs ratio."""
    cmp = compare_latency(
        {"baseline": base.cpu().eval(), "pruned": pruned.cpu().eval()},
        session.input_shape,
        session.config.cost.timing,
        CompareSettings(max_seconds=FINAL_TIMING_SECONDS),
    )
    ratio = cmp.ratios["pruned"]
    shape = session.input_shape
    return {
        "latency_ratio": ratio.value,
        "latency_ratio_low": ratio.low,
        "latency_ratio_high": ratio.high,
        "baseline_ms": cmp.latency["baseline"].value,
        "pruned_ms": cmp.latency["pruned"].value,
        "macs_ratio": count_macs(pruned, shape) / count_macs(base, shape),
    }


def run_row(task: dict[str, Any], finetunes: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """Select, fine-tune, test and time one (model, budget, method, seed)."""
    torch.set_num_threads(task["threads"])
    config = RunConfig.from_dict(task["config"])
    t0 = time.perf_counter()
    session, base, chosen = _choose(task, config)
    spec: PruningSpec = chosen["spec"]
    search_s = time.perf_counter() - t0
    widths = json.dumps(dict(sorted(spec.keep.items())))
    shared = finetunes.get(f"{task['model']}|{task['seed']}|{widths}")
    t1 = time.perf_counter()
    pruned = apply_spec(base, session.example_input, spec)
    if shared is None:
        session.finetune(pruned, seed=task["seed"])
        test = session.test(pruned)["top1"]
    else:  # the same widths and seed fine-tune to the same weights
        test = shared["test_top1"]
    measured = {"test_top1": test, **final_timing(session, base, pruned)}
    fit = chosen.get("fit") or {}
    return {
        **{k: task[k] for k in ("key", "model", "budget", "method", "seed")},
        "backend": "onnxruntime",
        "batch": config.cost.batch_size,
        "baseline_top1": task["baseline_top1"],
        **measured,
        "within_budget": measured["latency_ratio_high"] <= task["budget"],
        "predicted_ratio": fit.get("predicted"),
        "refits": max(0, len(fit.get("attempts", [])) - 1) if "attempts" in fit else None,
        "macs_searches": len(fit.get("macs_searches", [])) or None,
        "trials": chosen.get("trials"),
        "widths": widths,
        "shared_finetune": None if shared is None else shared["key"],
        "search_seconds": search_s,
        "total_seconds": search_s + time.perf_counter() - t1,
        "loadavg": loadavg(),
        "commit": task["commit"],
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter, allow_abbrev=False
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/latency_budget"))
    p.add_argument("--models", default="vgg16,resnet56")
    p.add_argument("--budgets", default="0.5,0.3")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--baseline-epochs", type=int, default=5)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--batch", type=int, default=32, help="latency batch size")
    p.add_argument("--data-root", default=None)
    p.add_argument("--smoke", action="store_true", help="synthetic, tiny settings (a test)")
    p.add_argument(
        "--report-only", action="store_true", help="write CSV, table and plot of OUT's rows"
    )
    a = p.parse_args(argv)
    if a.smoke:
        a.models, a.budgets, a.seeds = "vgg11", "0.7", "0"
        a.baseline_epochs, a.finetune_epochs, a.trials = 1, 1, 2
    return a


def _row_config(
    a: argparse.Namespace, base_cfg: RunConfig, weights: Path, model: str, budget: float, seed: int
) -> RunConfig:
    cost = replace(
        base_cfg.cost,
        backend="onnxruntime",
        batch_size=a.batch,
        threads=1,
        table=str((a.out / "tables" / f"{model}.json").resolve()),
    )
    search = replace(
        base_cfg.search,
        trials=a.trials,
        seed=seed,
        round_to=ROUND_TO.get(model),
        objective=ObjectiveConfig(max_latency=budget),
        **({"rescore": 0} if a.smoke else {}),
    )
    finetune = replace(base_cfg.finetune, epochs=a.finetune_epochs, lr=0.01)
    return replace(base_cfg, checkpoint=str(weights), cost=cost, search=search, finetune=finetune)


def tasks(a: argparse.Namespace, rows: Rows) -> list[dict[str, Any]]:
    """Rows still to run, ordered so that whole seeds of a setting finish first."""
    dataset = "synthetic" if a.smoke else "fashion-mnist"
    data = {"data_root": a.data_root} if a.data_root else {}
    commit = commit_id()
    todo = []
    for model in a.models.split(","):
        width = MODELS.get(model, 0.25)
        base_cfg = baseline_config(
            model, width, dataset, a.baseline_epochs, "cpu", ROUND_TO.get(model), **data
        )
        weights, info = baseline(a.out / f"baseline-{model}", base_cfg)
        log(f"{model}: baseline test top-1 {info['test_top1']:.4f}")
        for budget in (float(b) for b in a.budgets.split(",")):
            for seed in (int(s) for s in a.seeds.split(",")):
                for method in a.methods.split(","):
                    key = f"{model}_{budget:g}_{method}_s{seed}"
                    if key in rows:
                        continue
                    cfg = _row_config(a, base_cfg, weights, model, budget, seed)
                    todo.append(
                        {
                            "key": key,
                            "model": model,
                            "budget": budget,
                            "method": method,
                            "seed": seed,
                            "dir": str(a.out / "runs" / key),
                            "config": cfg.to_dict(),
                            "baseline_top1": info["test_top1"],
                            "threads": torch.get_num_threads(),
                            "commit": commit,
                        }
                    )
    return todo


FIELDS = [
    "model",
    "backend",
    "batch",
    "budget",
    "method",
    "seed",
    "test_top1",
    "baseline_top1",
    "latency_ratio",
    "latency_ratio_high",
    "macs_ratio",
    "within_budget",
    "predicted_ratio",
    "refits",
    "macs_searches",
    "shared_finetune",
    "search_seconds",
    "total_seconds",
    "loadavg",
    "commit",
    "widths",
]


def write_results(a: argparse.Namespace, rows: Rows, seconds: float, ran: int) -> None:
    """CSV of every row, a markdown table of mean +- std per setting and the plot."""
    order = {m: i for i, m in enumerate(METHODS)}
    ordered = sorted(rows, key=lambda r: (r["model"], -r["budget"], order[r["method"]], r["seed"]))
    with (a.out / "latency_budget_runs.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(ordered)
    headers = ("model", "latency budget", "method", "seeds", "test top-1 %", "Δ vs baseline pp")
    headers += ("latency ratio", "upper bound", "within budget", "MACs kept")
    cells = []
    settings = dict.fromkeys((r["model"], r["budget"], r["method"]) for r in ordered)
    for model, budget, method in settings:
        group = [
            r for r in ordered if (r["model"], r["budget"], r["method"]) == (model, budget, method)
        ]
        acc, sd = mean_std([100 * r["test_top1"] for r in group])
        spread = f" ± {sd:.2f}" if len(group) > 1 else ""
        cells.append(
            (model, f"{budget:g}", method, str(len(group)), f"{acc:.2f}{spread}")
            + (f"{mean_drop(group):+.2f}",)
            + (f"{mean_std([r['latency_ratio'] for r in group])[0]:.3f}",)
            + (f"{max(r['latency_ratio_high'] for r in group):.3f}",)
            + (f"{sum(bool(r['within_budget']) for r in group)}/{len(group)}",)
            + (f"{mean_std([r['macs_ratio'] for r in group])[0]:.3f}",)
        )
    if ran:
        env = {**machine_info("cpu"), "wall_seconds": round(seconds, 1), "args": vars(a)}
        (a.out / "latency_budget_env.json").write_text(json.dumps(env, indent=2, default=str))
    text = markdown_table(Table(headers, cells, align=("l",) * 3 + ("r",) * 7))
    picked: dict[tuple[str, float], dict[str, dict[int, float]]] = {}
    for r in ordered:
        setting = picked.setdefault((r["model"], r["budget"]), {})
        setting.setdefault(r["method"], {})[r["seed"]] = r["test_top1"]
    text += "\n\nPaired per seed (test top-1, iaprune minus each method, 95 % t-interval):\n\n"
    text += paired_table(picked, "iaprune")  # type: ignore[arg-type]
    (a.out / "latency_budget_results.md").write_text(text + "\n")
    print(text)
    _plot(a.out / "latency_budget.png", ordered)


def _plot(path: Path, rows: list[dict[str, Any]]) -> None:
    """Test accuracy against measured latency ratio, one panel per model, one marker per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in rows})
    if not models:
        return
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    markers = dict(zip(METHODS, "o^sDv", strict=True))
    for ax, model in zip(axes[0], models, strict=True):
        for method in METHODS:
            pts = [r for r in rows if r["model"] == model and r["method"] == method]
            if pts:
                ax.scatter(
                    [r["latency_ratio"] for r in pts],
                    [100 * r["test_top1"] for r in pts],
                    marker=markers[method],
                    label=method,
                    alpha=0.75,
                )
        for budget in sorted({r["budget"] for r in rows if r["model"] == model}):
            ax.axvline(budget, color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(f"{model}: ONNX Runtime, batch {rows[0]['batch']}, 1 thread")
        ax.set_xlabel("measured latency / unpruned (A/B)")
        ax.set_ylabel("test top-1 %")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _describe(r: dict[str, Any]) -> str:
    return (
        f"test {r['test_top1']:.4f} (baseline {r['baseline_top1']:.4f}), "
        f"latency x{r['latency_ratio']:.3f} <= {r['latency_ratio_high']:.3f}, "
        f"MACs x{r['macs_ratio']:.3f}, {r['total_seconds']:.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(parse(argv), tasks, run_row, _describe, write_results)


if __name__ == "__main__":
    raise SystemExit(main())
