"""Which finalist schedule picks the best candidate, at what cost? (issue 25, item 2)

Reads the rows of a finished ``proxy_fidelity.py`` run (``OUT/fidelity.jsonl``: every
candidate scored with several options, then fine-tuned with one or more seeds; the warm
starts named) and replays finalist schedules on them, without running anything:

* a finalist set is every warm start plus ``--searched`` candidates of the random
  allocations (the stand-ins for the search's own best trials): every such set when there
  are at most ``--sets``, else ``--sets`` drawn at random;
* a schedule is a list of rungs (option, count): the previous rung's best ``count``
  candidates (every one for the first rung) are scored with the rung's option; the last
  rung's best is the pick. A rung of more distillation steps continues the previous
  rung's training (the first ``s`` steps of an ``s' > s`` recovery are the same steps), so
  a survivor costs only the extra steps; a schedule that keeps the finalist stage's
  margin rule also scores its two contenders once more at its last rung (``with noise``).
  Today's stage costs 100 steps per finalist plus two 100-step noise scores;
* the endpoint is the **regret** in fine-tuned *validation* accuracy: the set's best minus
  the pick's (pp; the split a design choice may be taken on). Test regret is reported too.

Every schedule picks by score alone (the margin rule is not replayed). The difference to
today's regret comes with a 95 % bootstrap interval: each replicate resamples the random
candidates and, when the rows hold several fine-tune seeds, redraws every candidate's
ground truth with the fine-tuning noise (the pooled spread between its seeds). Results:
``OUT/finalist_schedules_PREFIX.md`` and ``.csv``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import random
import statistics
import sys
from pathlib import Path
from typing import Any

from common import Rows
from proxy_fidelity import OPTIONS

# name -> rungs (option, how many of the previous rung's best it scores; 0: every one)
SCHEDULES: dict[str, list[tuple[str, int]]] = {
    "bn": [("bn", 0)],
    "kd50": [("kd50", 0)],
    "kd100 (today)": [("kd100", 0)],
    "kd200": [("kd200", 0)],
    "kd400": [("kd400", 0)],
    "bn > kd100 x4": [("bn", 0), ("kd100", 4)],
    "bn > kd200 x2": [("bn", 0), ("kd200", 2)],
    "bn > kd400 x2": [("bn", 0), ("kd400", 2)],
    "kd50 > kd100 x3": [("kd50", 0), ("kd100", 3)],
    "kd50 > kd100 x4 > kd200 x2": [("kd50", 0), ("kd100", 4), ("kd200", 2)],
    "kd100 > kd200 x2": [("kd100", 0), ("kd200", 2)],
    "kd100 > kd400 x2": [("kd100", 0), ("kd400", 2)],
}
TODAY = "kd100 (today)"
Row = dict[str, Any]


def steps_of(option: str) -> int:
    """Distillation steps behind a score option."""
    return OPTIONS[option][0]


def replay(rows: list[Row], rungs: list[tuple[str, int]]) -> tuple[int, int]:
    """(index of the pick in ``rows``, distillation steps spent) for one finalist set."""
    alive, spent, done = list(range(len(rows))), 0, 0
    for option, count in rungs:
        alive = alive[: count or len(alive)]  # the previous rung's best go on
        spent += len(alive) * max(0, steps_of(option) - done)
        done = max(done, steps_of(option))
        alive.sort(key=lambda i: (-rows[i]["scores"][option][0], i))
    return alive[0], spent


def with_noise(rungs: list[tuple[str, int]], spent: int) -> int:
    """Steps including the margin rule's two noise scores at the last rung."""
    return spent + 2 * steps_of(rungs[-1][0])


def finalist_sets(
    n_pool: int, searched: int, sets: int, rng: random.Random
) -> list[tuple[int, ...]]:
    """Indices of the random candidates of every finalist set (all when few enough)."""
    if math.comb(n_pool, searched) <= sets:
        return list(itertools.combinations(range(n_pool), searched))
    return [tuple(rng.sample(range(n_pool), searched)) for _ in range(sets)]


def regrets(
    warm: list[Row], pool: list[Row], searched: int, sets: int, rng: random.Random
) -> dict[str, dict[str, float]]:
    """Per schedule: mean validation/test regret (pp), share of best picks and steps."""
    acc: dict[str, dict[str, list[float]]] = {
        name: {"val": [], "test": [], "hit": [], "steps": [], "with_noise": []}
        for name in SCHEDULES
    }
    for idx in finalist_sets(len(pool), searched, sets, rng):
        chosen = warm + [pool[i] for i in idx]
        best_val = max(r["val_top1"] for r in chosen)
        best_test = max(r["test_top1"] for r in chosen)
        for name, rungs in SCHEDULES.items():
            pick, spent = replay(chosen, rungs)
            m = acc[name]
            m["val"].append(100 * (best_val - chosen[pick]["val_top1"]))
            m["test"].append(100 * (best_test - chosen[pick]["test_top1"]))
            m["hit"].append(float(chosen[pick]["val_top1"] == best_val))
            m["steps"].append(spent)
            m["with_noise"].append(with_noise(rungs, spent))
    return {n: {k: statistics.fmean(v) for k, v in m.items()} for n, m in acc.items()}


def finetune_noise(rows: list[Row]) -> tuple[float, int]:
    """Pooled standard deviation between a candidate's fine-tune seeds, and the seeds per row.

    (0, 1) when the rows hold one fine-tune each: the ground truth is then taken as exact.
    """
    seeds = [r.get("val_seeds") or [r["val_top1"]] for r in rows]
    k = min(len(s) for s in seeds)
    if k < 2:
        return 0.0, 1
    return math.sqrt(statistics.fmean(statistics.variance(s) for s in seeds)), k


def intervals(
    warm: list[Row], pool: list[Row], a: argparse.Namespace
) -> dict[str, tuple[float, float]]:
    """95 % bootstrap interval of each schedule's mean validation regret minus today's."""
    rng = random.Random(a.seed + 1)
    sd, k = finetune_noise(warm + pool)

    def redraw(r: Row) -> Row:
        return {**r, "val_top1": r["val_top1"] + rng.gauss(0.0, sd / math.sqrt(k))} if sd else r

    diffs: dict[str, list[float]] = {name: [] for name in SCHEDULES}
    for _ in range(a.boot):
        sample = [redraw(rng.choice(pool)) for _ in pool]
        r = regrets([redraw(w) for w in warm], sample, a.searched, a.boot_sets, rng)
        for name in SCHEDULES:
            diffs[name].append(r[name]["val"] - r[TODAY]["val"])
    cut = int(0.025 * a.boot)
    out = {}
    for name, d in diffs.items():
        d.sort()
        out[name] = (d[cut], d[len(d) - 1 - cut])
    return out


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    p.add_argument("--out", type=Path, required=True, help="a proxy_fidelity.py --out DIR")
    p.add_argument("--prefix", required=True, help="the rows' MODEL_BUDGET, e.g. vgg16_0.15")
    p.add_argument("--searched", type=_positive, default=3, help="random candidates per set")
    p.add_argument("--sets", type=_positive, default=2000)
    p.add_argument("--boot", type=_positive, default=400, help="bootstrap replicates")
    p.add_argument("--boot-sets", type=_positive, default=200, help="sets per replicate")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def problem(rows: list[Row], searched: int) -> str | None:
    """Why ``rows`` cannot be replayed (None: they can)."""
    needed = {o for rungs in SCHEDULES.values() for o, _ in rungs}
    if not rows:
        return "no rows"
    missing = sorted(needed - set.intersection(*(set(r["scores"]) for r in rows)))
    if missing:
        return f"the options {', '.join(missing)} are missing"
    if any(r.get("val_top1") is None for r in rows):
        return "a row has no fine-tuned validation accuracy (a --picks row?)"
    if not any(r.get("warm_start") for r in rows):
        return "no row names its warm start"
    if sum(1 for r in rows if not r.get("warm_start")) <= searched:
        return f"more than --searched {searched} random candidates are needed"
    return None


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    rows = [r for r in Rows(a.out / "fidelity.jsonl") if r["key"].startswith(a.prefix + "_")]
    if why := problem(rows, a.searched):
        print(f"error: {a.out / 'fidelity.jsonl'}, rows {a.prefix}: {why}", file=sys.stderr)
        return 2
    rows.sort(key=lambda r: int(r["key"].rsplit("_c", 1)[1]))
    warm = [r for r in rows if r.get("warm_start")]
    pool = [r for r in rows if not r.get("warm_start")]
    result = regrets(warm, pool, a.searched, a.sets, random.Random(a.seed))
    spans = intervals(warm, pool, a)
    today = result[TODAY]["with_noise"]
    table = [
        {"schedule": name, **m, "within_cost": m["with_noise"] <= today, "vs_today": spans[name]}
        for name, m in result.items()
    ]
    write(a, table, len(warm), len(pool), finetune_noise(rows))
    return 0


def write(
    a: argparse.Namespace,
    table: list[dict[str, Any]],
    n_warm: int,
    n_pool: int,
    noise: tuple[float, int],
) -> None:
    """``OUT/finalist_schedules_PREFIX.csv`` and ``.md``; prints the table."""
    stem = f"finalist_schedules_{a.prefix}"
    flat = [
        {**{k: v for k, v in t.items() if k != "vs_today"}, "vs_today_low": t["vs_today"][0]}
        | {"vs_today_high": t["vs_today"][1]}
        for t in table
    ]
    with (a.out / f"{stem}.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(flat[0]))
        writer.writeheader()
        writer.writerows(flat)
    sd, k = noise
    lines = [
        f"{a.prefix}: {n_warm} warm starts + {a.searched} of {n_pool} random allocations per "
        f"finalist set; regret in fine-tuned accuracy (pp, lower is better); ground truth: "
        f"mean of {k} fine-tune(s)" + (f", spread between seeds {100 * sd:.2f} pp" if sd else ""),
        "",
        "| schedule | steps | with noise scores | within today's cost | val regret "
        "| minus today's (95 %) | best picked | test regret |",
        "|---|---:|---:|---|---:|---|---:|---:|",
    ]
    today = next(t["val"] for t in table if t["schedule"] == TODAY)
    for t in table:
        low, high = t["vs_today"]
        vs = f"{t['val'] - today:+.2f} [{low:+.2f}, {high:+.2f}]"
        vs = "—" if t["schedule"] == TODAY else vs
        lines.append(
            f"| {t['schedule']} | {t['steps']:.0f} | {t['with_noise']:.0f} | "
            f"{'yes' if t['within_cost'] else 'no'} | {t['val']:.2f} | {vs} | "
            f"{100 * t['hit']:.0f} % | {t['test']:.2f} |"
        )
    (a.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
