"""Scale-out: search throughput with 1 vs N workers, and the storage's cost per trial.

1. **Throughput**: ``iaprune search`` on a tiny model (test_vgg on digits, random
   sampler, ``--trial-steps`` SGD steps per trial so a trial is real work) with
   ``--workers 1`` and ``--workers N`` on the run's SQLite and, with ``--postgres URL``,
   on PostgreSQL. Trials per hour are counted over the search window (first trial start
   to last trial end, from the study), so baseline training and start-up are excluded.
2. **Storage overhead**: the iaprune worker loop (:func:`iaprune.search.work`,
   heartbeats on) with an objective that does nothing, on Optuna's in-memory storage,
   SQLite and PostgreSQL: milliseconds per trial that the storage costs.

``python benchmarks/scaling.py --out benchmarks/results/scaling [--postgres URL]`` writes
``scaling.md`` and ``scaling.csv``.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import torch

from iaprune.reports import Table, markdown_table
from iaprune.search import open_storage, work

TINY = [
    "--model", "test_vgg", "--width-mult", "1.0", "--baseline-epochs", "1", "--epochs", "1",
    "--bn-batches", "2", "--round-to", "1", "--batch-size", "256", "--sampler", "random",
]  # fmt: skip


def throughput(
    out: Path, *, trials: int, workers: int, steps: int, storage: str | None, threads: int
) -> dict:
    """Run one search in a fresh process; trials per hour over the search window.

    ``threads``: torch threads of a single worker (``--workers N`` splits the cores).
    """
    run = out / f"run-w{workers}-t{threads}-{'pg' if storage else 'sqlite'}"
    shutil.rmtree(run, ignore_errors=True)
    name = f"scaling-{run.name}-{int(time.time())}"
    args = ["search", "--run-dir", str(run), *TINY, "--trials", str(trials)]
    args += ["--trial-steps", str(steps), "--workers", str(workers), "--study-name", name]
    args += ["--storage", storage] if storage else []
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "iaprune.cli.main", *args], env=env, check=True)
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name=name, storage=storage or f"sqlite:///{run}/study.db")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    start = min(t.datetime_start for t in done)
    end = max(t.datetime_complete for t in done)
    window = (end - start).total_seconds()
    return {
        "kind": "throughput",
        "storage": "postgresql" if storage else "sqlite",
        "workers": workers,
        "threads": threads if workers == 1 else max(1, (os.cpu_count() or 1) // workers),
        "trials": len(done),
        "search_s": round(window, 2),
        "trials_per_hour": round(len(done) / window * 3600),
        "wall_s": round(wall, 1),
        "per_worker": {
            w: sum(1 for t in done if t.user_attrs.get("worker") == w)
            for w in sorted({t.user_attrs.get("worker") for t in done})
        },
    }


def overhead(name: str, storage: Any, trials: int) -> dict:
    """Milliseconds per trial of the worker loop with an empty objective."""
    study = optuna.create_study(storage=storage, study_name=f"overhead-{time.time()}")
    t0 = time.perf_counter()
    work(study, lambda t: t.suggest_float("a", 0, 1), trials)
    seconds = time.perf_counter() - t0
    return {
        "kind": "overhead",
        "storage": name,
        "trials": trials,
        "ms_per_trial": round(1000 * seconds / trials, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/scaling"))
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--trial-steps", type=int, default=50)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--overhead-trials", type=int, default=200)
    p.add_argument("--postgres", help="SQLAlchemy URL of a PostgreSQL database")
    p.add_argument(
        "--work", type=Path, default=Path("benchmarks/.cache/scaling"), help="run directories"
    )
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    a.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("IAPRUNE_NO_PROGRESS", "1")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    stores: list[tuple[str, Any]] = [("in-memory", optuna.storages.InMemoryStorage())]
    sqlite = a.work / "overhead.db"
    sqlite.unlink(missing_ok=True)
    stores.append(("sqlite", open_storage(f"sqlite:///{sqlite}", heartbeat=10)))
    if a.postgres:
        stores.append(("postgresql", open_storage(a.postgres, heartbeat=10)))
    for name, store in stores:
        rows.append(overhead(name, store, a.overhead_trials))
        print(rows[-1], flush=True)
    for storage in [None, a.postgres] if a.postgres else [None]:
        cores = os.cpu_count() or 1
        for workers, threads in ((1, cores), (1, 1), (a.workers, 1)):
            rows.append(
                throughput(
                    a.work,
                    trials=a.trials,
                    workers=workers,
                    steps=a.trial_steps,
                    storage=storage,
                    threads=threads,
                )
            )
            print(rows[-1], flush=True)
    _write(a, rows)


def _write(a: argparse.Namespace, rows: list[dict]) -> None:
    env = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}, optuna {optuna.__version__}, "
        f"python {platform.python_version()}"
    )
    with open(a.out / "scaling.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)
    keys = ("storage", "workers", "threads", "trials", "search_s", "trials_per_hour", "wall_s")
    throughput_rows = [tuple(str(r[k]) for k in keys) for r in rows if r["kind"] == "throughput"]
    overhead_rows = [
        (r["storage"], str(r["trials"]), str(r["ms_per_trial"]))
        for r in rows
        if r["kind"] == "overhead"
    ]
    headers = ("storage", "workers", "torch threads each", "trials", "search window (s)")
    lines = [
        "# Scale-out: workers and storage",
        "",
        f"Environment: {env}; 1-minute load average at the end {os.getloadavg()[0]:.2f}. "
        f"Command: `python benchmarks/scaling.py --trials {a.trials} "
        f"--trial-steps {a.trial_steps} --workers {a.workers}"
        f"{' --postgres URL' if a.postgres else ''}`.",
        "",
        markdown_table(Table((*headers, "trials / hour", "wall (s)"), throughput_rows)),
        "",
        markdown_table(
            Table(
                ("storage", "empty trials", "ms per trial (worker loop, heartbeats on)"),
                overhead_rows,
            )
        ),
    ]
    (a.out / "scaling.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
