"""Do the pruned models iaprune chooses run as much faster as their MACs say?

For CIFAR VGG16 and ResNet34 at full width (random weights, seed 0) and MACs budgets of
50 % and 25 %, three pruned configurations per budget:

* ``uniform``: one keep-ratio for every group, the largest meeting the budget
  (:func:`iaprune.search.uniform_keep`), any channel count;
* ``bo-macs``: GP-BO maximising the accuracy proxy s.t. MACs <= budget, round to 1 (no
  hardware knowledge);
* ``bo-latency``: GP-BO maximising ``proxy - w * predicted latency ratio`` s.t. MACs <=
  budget, widths rounded to the backend's multiple, latency predicted by that backend's
  batch-1 latency table (:class:`iaprune.cost.LatencyTable`, reused from
  ``lut_error.py``'s cache when present);
* ``bo-latbudget``: GP-BO maximising the proxy s.t. MACs <= budget *and* predicted
  latency <= budget x the unpruned model's latency (the MACs budget stated as a latency
  budget, ``--max-latency-ms``), widths rounded to the backend's multiple.

The accuracy term is the training-free proxy of
:class:`iaprune.search.RetainedImportanceEvaluator` (share of L1 filter importance kept):
random weights make accuracy meaningless, so this benchmark is about latency, not accuracy.

Every configuration is then timed *interleaved* with the unpruned model in one process
(:func:`iaprune.cost.compare_latency`: short blocks in shuffled order per round, the
fastest run of a block as the round's value (robust to preemption on this shared
machine), thread count pinned, rounds until every ratio's 95 % interval is within +-2 %
or the cell's time limit), per backend and batch size. The result is the latency ratio
with its interval and ``latency ratio / MACs ratio`` (1 = the speed-up the MACs promise;
a ratio interval wider than +-5 % is flagged).

Writes ``benchmarks/results/latency_ratio_<machine>.csv`` and ``.md``; searches and rows
are cached in ``benchmarks/.cache/latency_ratio/`` so an interrupted run resumes.

Usage::

    python benchmarks/latency_ratio.py                                    # committed run
    python benchmarks/latency_ratio.py --models vgg16:0.25 --budgets 0.5 --trials 4 \\
        --batches 1 --out /tmp/lr                                          # smoke, ~1 min
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Sequence
from pathlib import Path

import optuna
import torch
from common import Rows, cifar_model, latency_env, loadavg, log, machine_tag

from iaprune import ObjectiveConfig, SearchConfig
from iaprune.cost import (
    CompareSettings,
    LatencyTable,
    StaticCostModel,
    TimingSettings,
    compare_latency,
    count_macs,
    predicted_cost,
)
from iaprune.cost.latency import default_round_to
from iaprune.pruning import Pruner
from iaprune.search import (
    RetainedImportanceEvaluator,
    SearchSpace,
    WarmStart,
    retained_importance,
    run_search,
    uniform_keep,
    uniform_ratio,
)

HERE = Path(__file__).resolve().parent
SHAPE = (3, 32, 32)
METHODS = ("uniform", "bo-macs", "bo-latency", "bo-latbudget")


def search_config(name: str, objective: ObjectiveConfig, round_to: int, a: argparse.Namespace):
    """GP search settings of one study (seeded; trial 0 is the uniform allocation)."""
    return SearchConfig(
        sampler="gp",
        trials=a.trials,
        seed=0,
        importance="l1",
        min_ratio=a.min_ratio,
        round_to=round_to,
        study_name=name,
        objective=objective,
        space="free",
        warm_start=True,
        rescore=0,
    )


def table_for(
    model: torch.nn.Module,
    pruner: Pruner,
    tag: str,
    backend: str,
    cache: Path,
    a: argparse.Namespace,
) -> LatencyTable:
    """The backend's batch-1 table: lut_error.py's if cached, else built here (same settings)."""
    name, width = tag.split("-w")
    shared = cache.parent / "lut_error" / f"{backend}-{name}-w{float(width)}-b1.json"
    if shared.is_file():
        return LatencyTable.load(shared)
    path = cache / f"{backend}-{tag}-b1.json"
    if path.is_file():
        return LatencyTable.load(path)
    timing = TimingSettings(backend=backend, threads=a.threads, warmup=2, repeats=5)
    table = LatencyTable.build(model, SHAPE, pruner.groups, timing, grid=4, calibrate=8)
    table.save(path)
    return table


def find_configs(name: str, width: float, a: argparse.Namespace, rows: Rows, cache: Path):
    """Every configuration of one model (searched once, cached in ``rows``)."""
    tag = f"{name}-w{width:g}"
    model = cifar_model(name, width)
    pruner = Pruner(model, torch.zeros((1, *SHAPE)), importance="l1", seed=0)
    static = RetainedImportanceEvaluator(pruner, StaticCostModel())
    storage = f"sqlite:///{cache / 'studies.db'}"
    for budget in a.budgets:
        macs_only = ObjectiveConfig(max_macs=budget)
        key = config_key(tag, budget, "uniform")
        if key not in rows:
            cfg = search_config(key, macs_only, 1, a)
            keep = uniform_keep(
                static,
                SearchSpace.from_groups(pruner.groups, min_ratio=a.min_ratio, round_to=1),
                cfg,
            )
            rows.add({"key": key, "keep": keep, "proxy": retained_importance(pruner, keep)})
        searches = [("bo-macs", "", static, 1, macs_only)]
        for backend in a.backends:
            table = table_for(model, pruner, tag, backend, cache, a)
            evaluator = RetainedImportanceEvaluator(pruner, predicted_cost(table, SHAPE))
            objective = ObjectiveConfig(kind="weighted", w_latency=a.w_latency, max_macs=budget)
            searches.append(
                ("bo-latency", backend, evaluator, default_round_to(backend), objective)
            )
            as_latency = ObjectiveConfig(max_macs=budget, max_latency_ms=budget * table.full_ms)
            searches.append(
                ("bo-latbudget", backend, evaluator, default_round_to(backend), as_latency)
            )
        for method, backend, evaluator, round_to, objective in searches:
            key = config_key(tag, budget, method, backend)
            if key in rows:
                continue
            space = SearchSpace.from_groups(pruner.groups, min_ratio=a.min_ratio, round_to=round_to)
            cfg = search_config(key, objective, round_to, a)
            r = uniform_ratio(evaluator, space, cfg)
            ratio = {"uniform": WarmStart(space.params_for(r), space.uniform(r))}
            start = time.perf_counter()
            result = run_search(
                evaluator, space, cfg, storage=storage, resume=True, warm_starts=ratio
            )
            rows.add(
                {
                    "key": key,
                    "keep": dict(result.spec.keep),
                    "proxy": result.accuracy,
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
            log(f"  {key}: proxy {result.accuracy:.4f}, MACs x{result.ratios['macs']:.3f}")
    return model, pruner


def config_key(tag: str, budget: float, method: str, backend: str = "") -> str:
    """Cache key of one searched configuration (``bo-latency`` is per backend)."""
    return f"config|{tag}|{budget:g}|{method}" + (f"|{backend}" if backend else "")


def time_cell(
    name: str,
    width: float,
    model,
    pruner: Pruner,
    backend: str,
    batch: int,
    a: argparse.Namespace,
    rows: Rows,
) -> None:
    """Interleaved timing of the unpruned model and every configuration of one cell."""
    tag = f"{name}-w{width:g}"
    key = f"time|{tag}|{backend}|{batch}"
    if key in rows:
        return
    models = {"unpruned": model}
    macs = {"unpruned": 1.0}
    proxy = {"unpruned": 1.0}
    base_macs = count_macs(model, SHAPE)
    for budget in a.budgets:
        for method in METHODS:
            suffix = backend if method.startswith("bo-lat") else ""
            keep = rows.rows[config_key(tag, budget, method, suffix)]["keep"]
            label = f"{method}@{budget:g}"
            proxy[label] = retained_importance(pruner, keep)
            models[label] = pruner.prune(keep).eval()
            macs[label] = count_macs(models[label], SHAPE) / base_macs
    settings = CompareSettings(
        block=a.block if batch == 1 else 2,
        statistic="min",
        min_rounds=5 if batch == 1 else 4,
        max_rounds=30,
        target=0.02,
        max_seconds=a.cell_seconds,
    )
    timing = TimingSettings(backend=backend, batch_size=batch, threads=a.threads, warmup=2)
    log(f"timing {key} ({len(models)} models)")
    cmp = compare_latency(models, SHAPE, timing, settings, reference="unpruned")
    for label in models:
        r, lat = cmp.ratios[label], cmp.latency[label]
        rows.add(
            {
                "key": f"{key}|{label}",
                "model": name,
                "width_mult": width,
                "backend": backend,
                "batch": batch,
                "config": label,
                "macs_ratio": round(macs[label], 4),
                "proxy": round(proxy[label], 4),
                "latency_ms": round(lat.value, 4),
                "latency_low_ms": round(lat.low, 4),
                "latency_high_ms": round(lat.high, 4),
                "latency_ratio": round(r.value, 4),
                "latency_ratio_low": round(r.low, 4),
                "latency_ratio_high": round(r.high, 4),
                "latency_over_macs_ratio": round(r.value / macs[label], 3),
                "latency_over_macs_low": round(r.low / macs[label], 3),
                "latency_over_macs_high": round(r.high / macs[label], 3),
                "flagged_wide": label in cmp.flagged(),
                "rounds": cmp.rounds,
                "cell_seconds": cmp.env["seconds"],
                "load_before": cmp.env["load_before"],
                "load_after": cmp.env["load_after"],
            }
        )
    rows.add({"key": key, "seconds": cmp.env["seconds"]})
    best = {lbl: cmp.ratios[lbl].value / macs[lbl] for lbl in models if lbl != "unpruned"}
    log("  " + ", ".join(f"{k} {v:.2f}" for k, v in best.items()))


FIELDS = [
    "model",
    "width_mult",
    "backend",
    "batch",
    "config",
    "macs_ratio",
    "proxy",
    "latency_ms",
    "latency_low_ms",
    "latency_high_ms",
    "latency_ratio",
    "latency_ratio_low",
    "latency_ratio_high",
    "latency_over_macs_ratio",
    "latency_over_macs_low",
    "latency_over_macs_high",
    "flagged_wide",
    "rounds",
    "load_before",
    "load_after",
]


def write(rows: list[dict], a: argparse.Namespace, env: dict, configs: list[dict]) -> None:
    """CSV (one row per timed configuration) and the markdown report."""
    stem = a.out / f"latency_ratio_{a.tag or machine_tag()}"
    a.out.mkdir(parents=True, exist_ok=True)
    with open(f"{stem}.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# Latency ratio / MACs ratio of the pruned models (interleaved A/B timing)",
        "",
        f"Random-weight CIFAR models, MACs budgets {', '.join(f'{b:g}' for b in a.budgets)}, "
        f"{a.threads} thread. Each cell (model, backend, batch) times the unpruned model and "
        "every configuration interleaved in one process (`iaprune.cost.compare_latency`, "
        "per round the fastest of a short block per model); "
        "latency ratio = geometric mean of per-round ratios to the unpruned model, [95 % "
        "interval]; **L/M** = latency ratio / MACs ratio (1.0 = the MACs speed-up is fully "
        "realised). `!` marks a ratio interval wider than +-5 %. `bo-latency` (weighted) and "
        "`bo-latbudget` (latency ratio <= MACs budget) were searched with the backend's "
        "batch-1 latency table and are timed at every batch.",
        "",
        "| model | backend | batch | unpruned ms | config | MACs x | proxy | latency x [95 %] "
        "| **L/M** |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by_cell: dict[tuple, list[dict]] = {}
    for r in rows:
        by_cell.setdefault((r["model"], r["width_mult"], r["backend"], r["batch"]), []).append(r)
    for (model, width, backend, batch), rs in by_cell.items():
        base = next(r for r in rs if r["config"] == "unpruned")
        for r in rs:
            if r["config"] == "unpruned":
                continue
            flag = " !" if r["flagged_wide"] else ""
            lines.append(
                f"| {model} x{width:g} | {backend} | {batch} | {base['latency_ms']:.2f} "
                f"| {r['config']} | {r['macs_ratio']:.3f} | {r['proxy']:.3f} "
                f"| {r['latency_ratio']:.3f} "
                f"[{r['latency_ratio_low']:.3f}, {r['latency_ratio_high']:.3f}]{flag} "
                f"| **{r['latency_over_macs_ratio']:.2f}** |"
            )
    lines += ["", "## Searches", "", "| key | proxy | search s |", "|---|---|---|"]
    lines += [
        f"| {c['key']} | {c.get('proxy', float('nan')):.4f} | {c.get('seconds', 0)} |"
        for c in configs
    ]
    lines += [
        "",
        "## Environment",
        "",
        *[f"* {k}: {v}" for k, v in env.items()],
        f"* search: GP, {a.trials} trials, w_latency {a.w_latency}, min ratio {a.min_ratio}",
        f"* load average at the end: {loadavg()} (per cell before/after in the CSV); the "
        "2 cores were shared with another agent running tests, which interleaving tolerates "
        "for ratios but not for absolute milliseconds",
        f"* finished {time.strftime('%Y-%m-%d %H:%M %Z')}",
        "",
    ]
    Path(f"{stem}.md").write_text("\n".join(lines), encoding="utf-8")
    log(f"wrote {stem}.csv/.md")


def main(argv: Sequence[str] | None = None) -> int:
    """Search every configuration, time every cell, write the results."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--models", nargs="+", default=["vgg16:1.0", "resnet34:1.0"])
    p.add_argument("--budgets", nargs="+", type=float, default=[0.5, 0.25])
    p.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--w-latency", type=float, default=0.5)
    p.add_argument("--min-ratio", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--block", type=int, default=3, help="timed runs per model per round")
    p.add_argument("--cell-seconds", type=float, default=150.0, help="time limit per cell")
    p.add_argument("--tag", default=None)
    p.add_argument("--out", type=Path, default=HERE / "results")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    default_out = a.out == HERE / "results"
    cache = (HERE if default_out else a.out) / ".cache" / "latency_ratio"
    cache.mkdir(parents=True, exist_ok=True)
    rows = Rows(cache / "rows.jsonl")
    models = [(m.split(":")[0], float(m.split(":")[1]) if ":" in m else 1.0) for m in a.models]
    built = {}
    for name, width in models:
        log(f"searching {name} x{width:g}")
        built[name, width] = find_configs(name, width, a, rows, cache)
    for name, width in models:
        for backend in a.backends:
            for batch in a.batches:
                time_cell(name, width, *built[name, width], backend, batch, a, rows)
    timed = [r for r in rows if "config" in r and r["key"].startswith("time|")]
    configs = [r for r in rows if r["key"].startswith("config|")]
    for r in timed:  # rows timed before the proxy was recorded with them
        if "proxy" not in r:
            method, _, budget = r["config"].partition("@")
            suffix = r["backend"] if method.startswith("bo-lat") else ""
            tag = f"{r['model']}-w{r['width_mult']:g}"
            key = config_key(tag, float(budget), method, suffix) if budget else ""
            r["proxy"] = rows.rows[key]["proxy"] if key else 1.0
    write(timed, a, latency_env(a.threads), configs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
