"""How well does a search trial's score rank candidates the way fine-tuning will?

At ONE MACs budget, N random allocations of the default budget space (plus the uniform
and global-magnitude warm starts) are each scored with every trial-score option and
then fine-tuned and tested exactly as the final model would be. Per option the script
reports Kendall's tau and Spearman's rho between score and fine-tuned test accuracy,
the score's noise (mean |score(seed 0) - score(seed 1)|, re-scoring with the training
batches in another order) and the seconds per trial. Rank correlation *among
candidates at the same budget* is what decides whether a search can beat uniform.

Results: ``OUT/fidelity.jsonl`` (resumable), ``OUT/proxy_fidelity.csv`` and
``OUT/proxy_fidelity.md``; ``--smoke`` runs on ``digits`` in seconds.

``--picks DIR`` scores instead the allocations that the methods of a finished
``fashion_mnist.py`` run (its ``--out DIR``) chose at ``--model``/``--budget``, whose
fine-tuned test accuracy that run measured (no fine-tuning here): the candidates a final
choice actually has to rank. Results: ``OUT/picks.jsonl``, ``OUT/proxy_fidelity_picks.*``.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from common import Rows, baseline, baseline_config, log, machine_info, pruned_config, run_pool
from scipy import stats

from iaprune import ObjectiveConfig, RunConfig, Session
from iaprune.cost import count_macs
from iaprune.pruning import apply_spec
from iaprune.reports import Table, markdown_table
from iaprune.search import AllocationSpace, make_space, warm_starts
from iaprune.train import evaluate

# name -> (SGD steps per trial, distillation weight)
OPTIONS = {
    "bn": (0, 0.0),
    "sgd30": (30, 0.0),
    "kd30": (30, 1.0),
    "sgd100": (100, 0.0),
    "kd100": (100, 1.0),
    "kd50": (50, 1.0),
    "kd200": (200, 1.0),
    "kd400": (400, 1.0),
}
DEFAULT_OPTIONS = "bn,sgd30,kd30,sgd100,kd100"


def _space(session: Session, base: torch.nn.Module) -> tuple[Any, AllocationSpace]:
    pruner = session.pruner(base)
    space = make_space(
        pruner, session.input_shape, session.config.search, round_to=session.round_to
    )
    assert isinstance(space, AllocationSpace)
    return pruner, space


def candidates(
    space: AllocationSpace, pruner: Any, n: int, seed: int
) -> list[tuple[str | None, dict[str, int]]]:
    """Warm starts first (name, exact widths), then ``n`` random allocations (name None)."""
    rng = random.Random(seed)
    out: list[tuple[str | None, dict[str, int]]]
    out = [(name, w.keep) for name, w in warm_starts(pruner, space).items()]
    names = [space.param_name(c) for c in space.clusters]
    out += [
        (None, space.keep_for({p: rng.uniform(space.low, 1.0) for p in names})) for _ in range(n)
    ]
    return out


def run_candidate(task: dict[str, Any]) -> dict[str, Any]:
    """Score one candidate with every option, then fine-tune and test it."""
    torch.set_num_threads(task["threads"])
    config = RunConfig.from_dict(task["config"])
    session = Session.create(task["dir"], config, overwrite=True)
    base = session.baseline()
    pruner = session.pruner(base)
    keep = task["keep"]
    scores: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for name in task["options"]:
        steps, distill = OPTIONS[name]
        search = replace(config.search, finetune_steps=steps, distill=distill)
        scorer = Session(session.run, replace(config, search=search)).evaluator(base, pruner)
        t0 = time.perf_counter()
        scores[name] = [scorer(keep, seed=s).accuracy for s in (config.search.seed, 1000)]
        seconds[name] = (time.perf_counter() - t0) / 2
    shape = session.input_shape
    test, val, tests, vals = task.get("test_top1"), None, None, None
    if test is None:  # fine-tuned with every seed; the means are the ground truth
        tests, vals = [], []
        for seed in range(config.seed, config.seed + task.get("finetune_seeds", 1)):
            pruned = apply_spec(base, session.example_input, pruner.spec(keep))
            session.finetune(pruned, seed=seed)
            vals.append(evaluate(pruned, session.loaders["val"], desc="validate")["top1"])
            tests.append(session.test(pruned)["top1"])
        test, val = statistics.fmean(tests), statistics.fmean(vals)
    return {
        "key": task["key"],
        "keep": keep,
        "macs_ratio": count_macs(pruner.prune(keep), shape) / count_macs(base, shape),
        "scores": scores,
        "seconds": seconds,
        "test_top1": test,
        "val_top1": val,
        "test_seeds": tests,
        "val_seeds": vals,
        "warm_start": task.get("warm_start"),
    }


def _done(row: dict[str, Any] | None, keep: dict[str, int], options: list[str], seeds: int) -> bool:
    """Whether ``row`` holds this candidate with every option and fine-tune seed."""
    if row is None or row.get("keep") != keep:  # absent, or an older candidate
        return False
    return set(options) <= set(row["scores"]) and len(row.get("val_seeds") or []) >= seeds


def summarize(rows: list[dict[str, Any]], options: list[str]) -> list[dict[str, Any]]:
    """Rank correlations, regret, noise and time per option.

    Against the fine-tuned test accuracy, and (rows fine-tuned here) the fine-tuned
    validation accuracy: the split a design choice may be taken on. ``regret_val``: the
    best fine-tuned validation accuracy minus that of the option's top-scored candidate.
    """
    test = [r["test_top1"] for r in rows]
    val = [r.get("val_top1") for r in rows]
    has_val = all(v is not None for v in val)
    out = []
    for name in options:
        first = [r["scores"][name][0] for r in rows]
        noise = sum(abs(a - b) for a, b in (r["scores"][name] for r in rows)) / len(rows)
        top = max(range(len(rows)), key=lambda i: first[i])
        out.append(
            {
                "option": name,
                "steps": OPTIONS[name][0],
                "distill": OPTIONS[name][1],
                "n": len(rows),
                "kendall_tau": stats.kendalltau(first, test).statistic,
                "spearman_rho": stats.spearmanr(first, test).statistic,
                "kendall_tau_val": stats.kendalltau(first, val).statistic if has_val else None,
                "spearman_rho_val": stats.spearmanr(first, val).statistic if has_val else None,
                "regret_val": max(val) - val[top] if has_val else None,  # type: ignore[operator]
                "noise": noise,
                "seconds_per_trial": sum(r["seconds"][name] for r in rows) / len(rows),
            }
        )
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter, allow_abbrev=False
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/fashion_mnist"))
    p.add_argument("--model", default="vgg16")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--budget", type=float, default=0.25)
    p.add_argument("--candidates", type=int, default=16, help="random allocations")
    p.add_argument("--round-to", type=int, default=None, help="channel multiple (default: CPU's)")
    p.add_argument("--options", default=DEFAULT_OPTIONS, help=f"of: {', '.join(OPTIONS)}")
    p.add_argument("--baseline-epochs", type=int, default=30)
    p.add_argument("--finetune-epochs", type=int, default=5)
    p.add_argument(
        "--finetune-seeds", type=int, default=1, help="fine-tunes per candidate (mean is truth)"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--data-root", default=None)
    p.add_argument("--picks", type=Path, default=None, help="a fashion_mnist.py --out DIR")
    p.add_argument("--smoke", action="store_true")
    a = p.parse_args(argv)
    if a.smoke:
        a.model, a.width, a.candidates, a.budget = "test_vgg", 1.0, 4, 0.5
        a.baseline_epochs, a.finetune_epochs, a.options = 2, 1, "bn,sgd30"
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    if a.picks is not None:
        return picks(a)
    t0 = time.perf_counter()
    dataset = "digits" if a.smoke else "fashion-mnist"
    data = {"data_root": a.data_root} if a.data_root else {}
    base_cfg = baseline_config(
        a.model, a.width, dataset, a.baseline_epochs, a.device, a.round_to, **data
    )
    weights, info = baseline(a.out / f"baseline-{a.model}", base_cfg)
    log(f"{a.model}: baseline test top-1 {info['test_top1']:.4f}")
    cfg = pruned_config(base_cfg, weights, objective=ObjectiveConfig(max_macs=a.budget))
    cfg = replace(cfg, finetune=replace(cfg.finetune, epochs=a.finetune_epochs, lr=0.01))
    probe = Session.create(a.out / "fidelity-runs" / "probe", cfg, overwrite=True)
    pruner, space = _space(probe, probe.baseline())
    keeps = candidates(space, pruner, a.candidates, seed=0)
    prefix = f"{a.model}_{a.budget:g}"
    rows = Rows(a.out / "fidelity.jsonl")
    options = a.options.split(",")
    todo = [
        {
            "key": f"{prefix}_c{i}",
            "keep": k,
            "warm_start": name,
            "finetune_seeds": a.finetune_seeds,
            "options": options,
            "config": cfg.to_dict(),
            "dir": str(a.out / "fidelity-runs" / f"c{i}"),
            "threads": 1 if a.jobs > 1 else torch.get_num_threads(),
        }
        for i, (name, k) in enumerate(keeps)
        if not _done(rows.rows.get(f"{prefix}_c{i}"), k, options, a.finetune_seeds)
    ]
    log(f"{len(todo)} candidates to score and fine-tune ({len(rows.rows)} done)")
    for row in run_pool(run_candidate, todo, a.jobs):
        rows.add(row)
        log(f"{row['key']}: test {row['test_top1']:.4f}, scores {row['scores']}")
    mine = [r for r in rows if r["key"].startswith(prefix + "_")]
    write_tables(a, mine, options, "proxy_fidelity", info["test_top1"], t0, a.width)
    return 0


def write_tables(
    a: argparse.Namespace,
    mine: list[dict[str, Any]],
    options: list[str],
    name: str,
    baseline_top1: float,
    t0: float,
    width: float,
) -> None:
    """``OUT/NAME.csv``, ``OUT/NAME.md`` and ``OUT/NAME_env.json``; prints the table.

    ``width``: the scored model's width multiplier (in ``--picks`` mode, the benchmark's).
    """
    table = summarize(mine, options)
    test = [r["test_top1"] for r in mine]
    with (a.out / f"{name}.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    headers = ("score", "steps", "KD", "Kendall τ", "Spearman ρ")
    headers += ("τ (val)", "ρ (val)", "regret (val pp)", "noise (val acc)", "s / trial")
    cells = [
        (t["option"], str(t["steps"]), f"{t['distill']:g}", f"{t['kendall_tau']:.3f}")
        + (f"{t['spearman_rho']:.3f}", _fmt(t["kendall_tau_val"]), _fmt(t["spearman_rho_val"]))
        + (_fmt(t["regret_val"], 100, 2), f"{t['noise']:.4f}", f"{t['seconds_per_trial']:.2f}")
        for t in table
    ]
    title = (
        f"{a.model} width {width:g}, MACs budget {a.budget:g}, {len(mine)} candidates "
        f"(baseline test {100 * baseline_top1:.2f} %, test after fine-tuning "
        f"{100 * min(test):.2f}-{100 * max(test):.2f} %)"
    )
    lines = [title, "", markdown_table(Table(headers, cells))]
    (a.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    env = {**machine_info(a.device), "wall_seconds": time.perf_counter() - t0, "args": vars(a)}
    (a.out / f"{name}_env.json").write_text(json.dumps(env, indent=2, default=str))
    print("\n".join(lines))


def _fmt(x: float | None, scale: float = 1.0, digits: int = 3) -> str:
    return "n/a" if x is None else f"{scale * x:.{digits}f}"


def picks(a: argparse.Namespace) -> int:
    """Score the allocations a fashion_mnist.py run chose (see the module docstring)."""
    from fashion_mnist import tp_prune

    t0 = time.perf_counter()
    chosen = [
        r for r in Rows(a.picks / "rows.jsonl") if r["model"] == a.model and r["budget"] == a.budget
    ]
    if not chosen:
        raise SystemExit(f"no rows for {a.model} at budget {a.budget:g} in {a.picks}")
    ref = next((r for r in chosen if r["method"] == "iaprune"), chosen[0])
    cfg = RunConfig.from_dict(
        json.loads((a.picks / "runs" / ref["key"] / "config.json").read_text())
    )
    cfg = replace(cfg, device=a.device, search=replace(cfg.search, sampler="gp", seed=0))
    probe = Session.create(a.out / "picks-runs" / "probe", cfg, overwrite=True)
    base = probe.baseline()
    pruner = probe.pruner(base)
    seen: dict[tuple[tuple[str, int], ...], dict[str, Any]] = {}
    for r in chosen:
        if r["method"].startswith("tp-"):
            model = tp_prune(base, probe.example_input, a.budget, r["method"] == "tp-isomorphic")
            mods = dict(model.named_modules())
            keep = {g.name: int(mods[g.name].out_channels) for g in pruner.groups}
        else:
            result = json.loads((a.picks / "runs" / r["key"] / "search.json").read_text())
            keep = {k: int(v) for k, v in result["spec"]["keep"].items()}
        pick = seen.setdefault(tuple(sorted(keep.items())), {"keep": keep, "row": r, "tests": []})
        if r["method"] == pick["row"]["method"]:  # other methods may keep other filters
            pick["tests"].append(r["test_top1"])
    rows = Rows(a.out / "picks.jsonl")
    options = a.options.split(",")
    prefix = f"picks_{a.model}_{a.budget:g}"
    todo = [
        {
            "key": f"{prefix}_{c['row']['method']}_s{c['row']['seed']}",
            "keep": c["keep"],
            "test_top1": statistics.fmean(c["tests"]),  # over the method's seeds
            "options": options,
            "config": cfg.to_dict(),
            "dir": str(a.out / "picks-runs" / f"{c['row']['method']}_s{c['row']['seed']}"),
            "threads": 1 if a.jobs > 1 else torch.get_num_threads(),
        }
        for c in seen.values()
    ]
    todo = [t for t in todo if t["key"] not in rows]
    log(f"{len(todo)} chosen allocations to score ({len(seen)} distinct)")
    for row in run_pool(run_candidate, todo, a.jobs):
        rows.add(row)
        log(f"{row['key']}: test {row['test_top1']:.4f}, scores {row['scores']}")
    mine = [r for r in rows if r["key"].startswith(prefix + "_")]
    baseline_top1 = chosen[0]["baseline_top1"]
    write_tables(
        a,
        mine,
        options,
        f"proxy_fidelity_picks_{a.model}_{a.budget:g}",
        baseline_top1,
        t0,
        cfg.width_mult,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
