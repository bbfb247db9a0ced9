"""Which finalist schedule picks the best candidate, at what cost? (issue 25, item 2)

Reads the rows of a finished ``proxy_fidelity.py`` run (``OUT/fidelity.jsonl``: every
candidate scored with several options, then fine-tuned; the warm starts named) and
replays finalist schedules on them, without running anything:

* a finalist set is every warm start plus ``--searched`` candidates drawn from the random
  allocations (the stand-ins for the search's own best trials), ``--sets`` times;
* a schedule is a list of rungs (option, count): the previous rung's best ``count``
  candidates (every one for the first rung) are scored with the rung's option; the last
  rung's best is the pick. A rung of more distillation steps continues the previous
  rung's training (the first ``s`` steps of an ``s' > s`` recovery are the same steps),
  so a survivor costs only the extra steps;
* the endpoint is the **regret** in fine-tuned *validation* accuracy: the set's best minus
  the pick's (pp; the split a design choice may be taken on). Test regret is reported too.

The margin rule of the real finalist stage (a warm start is kept unless a searched
candidate beats it by the score's noise) is not replayed: every schedule picks by score
alone. The difference to today's schedule comes with a 95 % interval from resampling the
random candidates (the warm starts stay). Results: ``OUT/finalist_schedules.md`` and
``.csv``.
"""

from __future__ import annotations

import argparse
import csv
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
    "kd50 > kd100 x4 > kd200 x2": [("kd50", 0), ("kd100", 4), ("kd200", 2)],
    "kd100 > kd200 x2": [("kd100", 0), ("kd200", 2)],
    "kd100 > kd400 x2": [("kd100", 0), ("kd400", 2)],
    "bn > kd200 x4": [("bn", 0), ("kd200", 4)],
    "bn > kd400 x2": [("bn", 0), ("kd400", 2)],
}
TODAY = "kd100 (today)"


def steps_of(option: str) -> int:
    """Distillation steps behind a score option."""
    return OPTIONS[option][0]


def replay(rows: list[dict[str, Any]], rungs: list[tuple[str, int]]) -> tuple[int, int]:
    """(index of the pick in ``rows``, distillation steps spent) for one finalist set."""
    alive, spent, done = list(range(len(rows))), 0, 0
    for option, count in rungs:
        alive = alive[: count or len(alive)]  # the previous rung's best go on
        spent += len(alive) * max(0, steps_of(option) - done)
        done = max(done, steps_of(option))
        alive.sort(key=lambda i: (-rows[i]["scores"][option][0], i))
    return alive[0], spent


def regrets(
    warm: list[dict[str, Any]], pool: list[dict[str, Any]], searched: int, sets: int, seed: int
) -> dict[str, dict[str, float]]:
    """Mean validation/test regret (pp), hit rate and steps per schedule over ``sets`` sets."""
    rng = random.Random(seed)
    acc: dict[str, dict[str, list[float]]] = {
        name: {"val": [], "test": [], "hit": [], "steps": []} for name in SCHEDULES
    }
    for _ in range(sets):
        chosen = warm + rng.sample(pool, min(searched, len(pool)))
        best_val = max(r["val_top1"] for r in chosen)
        best_test = max(r["test_top1"] for r in chosen)
        for name, rungs in SCHEDULES.items():
            pick, spent = replay(chosen, rungs)
            acc[name]["val"].append(100 * (best_val - chosen[pick]["val_top1"]))
            acc[name]["test"].append(100 * (best_test - chosen[pick]["test_top1"]))
            acc[name]["hit"].append(float(chosen[pick]["val_top1"] == best_val))
            acc[name]["steps"].append(spent)
    return {n: {k: statistics.fmean(v) for k, v in m.items()} for n, m in acc.items()}


def interval(
    warm: list[dict[str, Any]], pool: list[dict[str, Any]], a: argparse.Namespace, name: str
) -> tuple[float, float]:
    """95 % interval of ``name``'s mean validation regret minus today's, resampling ``pool``."""
    rng = random.Random(a.seed + 1)
    diffs = []
    for b in range(a.boot):
        sample = [rng.choice(pool) for _ in pool]
        r = regrets(warm, sample, a.searched, a.boot_sets, a.seed + 2 + b)
        diffs.append(r[name]["val"] - r[TODAY]["val"])
    diffs.sort()
    return diffs[int(0.025 * len(diffs))], diffs[int(0.975 * len(diffs)) - 1]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    p.add_argument("--out", type=Path, required=True, help="a proxy_fidelity.py --out DIR")
    p.add_argument(
        "--prefix", required=True, help="rows' key prefix: MODEL_BUDGET, e.g. vgg16_0.15"
    )
    p.add_argument("--searched", type=int, default=3, help="random candidates per set")
    p.add_argument("--sets", type=int, default=2000)
    p.add_argument("--boot", type=int, default=200, help="resamples for the interval")
    p.add_argument("--boot-sets", type=int, default=200, help="sets per resample")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    rows = [r for r in Rows(a.out / "fidelity.jsonl") if r["key"].startswith(a.prefix + "_")]
    needed = {o for rungs in SCHEDULES.values() for o, _ in rungs}
    missing = sorted(needed - set.intersection(*(set(r["scores"]) for r in rows)) if rows else [])
    if not rows or missing or any(r.get("val_top1") is None for r in rows):
        print(
            f"error: {a.out}: rows of {a.prefix} need the options {', '.join(sorted(needed))} "
            f"and a fine-tuned validation accuracy (missing: {', '.join(missing) or 'rows'})",
            file=sys.stderr,
        )
        return 2
    rows.sort(key=lambda r: int(r["key"].rsplit("_c", 1)[1]))
    warm = [r for r in rows if r.get("warm_start")]
    pool = [r for r in rows if not r.get("warm_start")]
    result = regrets(warm, pool, a.searched, a.sets, a.seed)
    table = []
    for name, m in result.items():
        low, high = (0.0, 0.0) if name == TODAY else interval(warm, pool, a, name)
        table.append({"schedule": name, **m, "vs_today_low": low, "vs_today_high": high})
    write(a, table, len(warm), len(pool))
    return 0


def write(a: argparse.Namespace, table: list[dict[str, Any]], n_warm: int, n_pool: int) -> None:
    """``OUT/finalist_schedules.csv`` and ``.md``; prints the table."""
    with (a.out / "finalist_schedules.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    lines = [
        f"{a.prefix}: {n_warm} warm starts + {a.searched} of {n_pool} random allocations per "
        f"finalist set, {a.sets} sets; regret in fine-tuned accuracy (pp, lower is better)",
        "",
        "| schedule | steps / set | val regret | vs today (95 %) | best picked | test regret |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for t in table:
        vs = (
            "—"
            if t["schedule"] == TODAY
            else f"[{t['vs_today_low']:+.2f}, {t['vs_today_high']:+.2f}]"
        )
        lines.append(
            f"| {t['schedule']} | {t['steps']:.0f} | {t['val']:.2f} | {vs} | "
            f"{100 * t['hit']:.0f} % | {t['test']:.2f} |"
        )
    (a.out / "finalist_schedules.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
