"""Paired differences between iaprune and every other method, per (model, budget).

Every method of ``fashion_mnist.py`` fine-tunes with the row's seed (data order and
augmentation), so two methods at the same seed share that noise: their per-seed difference
is a sharper comparison than two means with their own spreads. After a table of every
method's mean +- std, this prints for each setting and each other method the mean
difference (reference minus method, in pp), its standard deviation, a 95 % Student-t
interval, and how many seeds the reference won, tied and lost.

Rows come from a runs CSV (``fashion_mnist_runs.csv``: ``model, budget, method, seed,
test_top1, source``); ``--select SOURCE_PREFIX:METHOD[,METHOD...]`` picks the rows of those
methods whose ``source`` starts with the prefix (repeat it; a (setting, method, seed) picked
twice is an error). A CSV without a ``source`` column (``search_value_runs.csv``) is picked
by its ``commit`` column instead. ``--best-of METHOD,...`` adds, per setting, the reference
minus the one of those methods with the highest mean (the hardest reference, chosen by its
mean over the picked seeds). Example, the CPU protocol with seeds 0-4::

    python benchmarks/paired.py --csv benchmarks/results/fashion_mnist_runs.csv \\
        --select "fashion_mnist_fill:iaprune,tpe,random" \\
        --select "fashion_mnist_ftseeds:eagleeye,uniform,tp-global,tp-isomorphic" \\
        --select "fashion_mnist_group:eagleeye" \\
        --select "fashion_mnist_seeds:iaprune,tpe,random,eagleeye,uniform,tp-global,tp-isomorphic"

and the search-value endpoint (issue 25)::

    python benchmarks/paired.py --csv benchmarks/results/search_value_runs.csv \\
        --select "f6bab0c:iaprune,iaprune-local,tpe,uniform,tp-global,knapsack,ranking,inner" \\
        --best-of uniform,tp-global,knapsack,ranking,inner
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from collections import defaultdict
from pathlib import Path

from scipy.stats import t as student_t

Setting = tuple[str, float]
Picked = dict[Setting, dict[str, dict[int, float]]]
"""``{(model, budget): {method: {seed: test_top1}}}``."""


def select(rows: list[dict[str, str]], specs: list[str]) -> Picked:
    """The test accuracies of the rows ``specs`` pick."""
    picked: Picked = defaultdict(lambda: defaultdict(dict))
    for spec in specs:
        prefix, _, methods = spec.rpartition(":")
        if not prefix or not methods:
            raise SystemExit(f"--select {spec!r}: expected SOURCE_PREFIX:METHOD[,METHOD...]")
        wanted = set(methods.split(","))
        for r in rows:
            source = r["source"] if "source" in r else r.get("commit", "")
            if r["method"] not in wanted or not source.startswith(prefix):
                continue
            setting, seed = (r["model"], float(r["budget"])), int(r["seed"])
            cell = picked[setting][r["method"]]
            if seed in cell:
                raise SystemExit(f"{setting} {r['method']} seed {seed} is picked twice")
            cell[seed] = float(r["test_top1"])
    return picked


def paired(ref: dict[int, float], other: dict[int, float]) -> dict[str, float | int]:
    """Per-seed differences ``ref - other`` in pp over their common seeds."""
    seeds = sorted(set(ref) & set(other))
    d = [100 * (ref[s] - other[s]) for s in seeds]
    n = len(d)
    mean = statistics.fmean(d) if d else math.nan
    sd = statistics.stdev(d) if n > 1 else math.nan
    half = float(student_t.ppf(0.975, n - 1)) * sd / math.sqrt(n) if n > 1 else math.nan
    return {
        "n": n,
        "mean": mean,
        "sd": sd,
        "low": mean - half,
        "high": mean + half,
        "wins": sum(x > 0.005 for x in d),
        "ties": sum(abs(x) <= 0.005 for x in d),
        "losses": sum(x < -0.005 for x in d),
    }


def means(picked: Picked) -> str:
    """Markdown: test top-1 % per setting and method, mean +- std over the picked seeds."""
    out = ["| model | budget | method | seeds | test top-1 % |", "|---|---|---|---|---:|"]
    for (model, budget), methods in sorted(picked.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        best = max(statistics.fmean(v.values()) for v in methods.values())
        for m, cell in sorted(methods.items()):
            acc = [100 * v for v in cell.values()]
            mean, sd = statistics.fmean(acc), statistics.stdev(acc) if len(acc) > 1 else 0.0
            text = f"{mean:.2f} ± {sd:.2f}"
            if math.isclose(mean, 100 * best):
                text = f"**{text}**"
            out.append(f"| {model} | {budget:.0%} | {m} | {len(acc)} | {text} |")
    return "\n".join(out)


def best_of(methods: dict[str, dict[int, float]], names: list[str]) -> str | None:
    """The one of ``names`` with the highest mean in this setting (None: none picked)."""
    present = [m for m in names if methods.get(m)]
    return max(present, key=lambda m: statistics.fmean(methods[m].values()), default=None)


def table(picked: Picked, reference: str, best: list[str] | None = None) -> str:
    """Markdown: one line per (setting, other method), then the best of ``best``, if any."""
    out = [
        f"| model | budget | {reference} minus | seeds | mean pp | sd | 95 % interval | "
        "won / tied / lost |",
        "|---|---|---|---|---:|---:|---|---|",
    ]
    for (model, budget), methods in sorted(picked.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        if reference not in methods:
            continue
        others = [(m, m) for m in sorted(methods) if m != reference]
        top = best_of(methods, best or [])
        if top is not None:
            others.append((f"best of {', '.join(best or [])} ({top})", top))
        for label, m in others:
            p = paired(methods[reference], methods[m])
            if not p["n"]:
                continue
            out.append(
                f"| {model} | {budget:.0%} | {label} | {p['n']} | {p['mean']:+.2f} | "
                f"{p['sd']:.2f} | [{p['low']:+.2f}, {p['high']:+.2f}] | "
                f"{p['wins']} / {p['ties']} / {p['losses']} |"
            )
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--select", action="append", required=True)
    p.add_argument("--reference", default="iaprune")
    p.add_argument("--best-of", default="", help="comma-separated methods: also the best of them")
    a = p.parse_args()
    with a.csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    picked = select(rows, a.select)
    best = [m for m in a.best_of.split(",") if m]
    print(means(picked), table(picked, a.reference, best), sep="\n\n")


if __name__ == "__main__":
    main()
