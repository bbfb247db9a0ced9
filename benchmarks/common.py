"""Shared pieces of the benchmark scripts, on iaprune's public API only.

* :class:`Rows`: results as JSON lines, one per finished unit of work, so a run resumes
  by skipping the keys already there (and a machine that only returns a few files can
  carry a whole run in one file).
* :func:`baseline`: train (or reload) the unpruned model of a benchmark through the
  pipeline's own baseline stage, cached as a state dict (loaded with ``weights_only``).
* :func:`run_pool`: run independent tasks in worker processes; on a GPU several small
  models train concurrently, which is how a 15-minute GPU lease fits a whole benchmark.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

import iaprune
from iaprune import FinetuneConfig, RunConfig, SearchConfig, Session


def log(msg: str) -> None:
    """Timestamped progress line on stdout (flushed: logs survive a killed run)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Rows:
    """Append-only JSON-lines store keyed by ``row["key"]``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():  # a line cut by a kill is dropped and redone
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    self.rows[row["key"]] = row

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def add(self, row: dict[str, Any]) -> None:
        """Record a finished row (flushed at once)."""
        self.rows[row["key"]] = row
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows.values())


def machine_info(device: str) -> dict[str, Any]:
    """What ran the benchmark: host, CPU count, torch/optuna versions, GPU name."""
    import optuna

    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "iaprune": iaprune.__version__,
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def baseline_config(
    model: str,
    width: float,
    dataset: str,
    epochs: int,
    device: str,
    round_to: int | None = None,
    **data: Any,
) -> RunConfig:
    """Run configuration of a benchmark's unpruned model (SGD, lr 0.05, batch 128).

    ``round_to``: the channel multiple of the rows pruned from it (None: the device's).
    Every run configuration is checked against its objective's budget (50 % MACs by
    default), which a model with small channel groups (resnet56 x0.375: groups of 6) cannot
    reach at the device's multiple (8), so such a baseline would not start without it; it
    does not change the training.
    """
    return RunConfig(
        model=model,
        dataset=dataset,
        width_mult=width,
        baseline_epochs=epochs,
        baseline_lr=0.05,
        device=device,
        finetune=FinetuneConfig(epochs=epochs, lr=0.05, batch_size=128),
        search=SearchConfig(round_to=round_to),
        **data,
    )


def baseline(out: Path, config: RunConfig) -> tuple[Path, dict[str, Any]]:
    """Train (resuming an interrupted training) or reload the baseline in ``out``.

    Returns its weights file and test metrics.
    """
    info_path = out / "baseline.json"
    weights = out / "baseline.pt"
    if info_path.is_file() and weights.is_file():
        return weights, json.loads(info_path.read_text())
    # a baseline cut short (a killed session) resumes from its last finished epoch
    started = (out / "config.json").is_file()
    session = Session.create(out, config, resume=started, overwrite=not started)
    t0 = time.perf_counter()
    model = session.baseline()
    info = {
        "test_top1": session.test(model)["top1"],
        "seconds": time.perf_counter() - t0,
        "epochs": config.baseline_epochs,
    }
    info_path.write_text(json.dumps(info))
    return weights, info


def pruned_config(base: RunConfig, weights: Path, **search: Any) -> RunConfig:
    """The baseline's run configuration, starting from its trained weights."""
    return replace(base, checkpoint=str(weights), search=replace(base.search, **search))


def run_pool(
    fn: Callable[[Any], dict[str, Any]], tasks: Iterable[Any], jobs: int
) -> Iterator[dict[str, Any]]:
    """Yield ``fn(task)`` for every task, in ``jobs`` spawned processes (inline when 1)."""
    tasks = list(tasks)
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield fn(task)
        return
    with mp.get_context("spawn").Pool(min(jobs, len(tasks)), maxtasksperchild=4) as pool:
        yield from pool.imap_unordered(fn, tasks)


def commit_id() -> str:
    """The short commit of the checkout the benchmark runs from ('unknown' outside git)."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True)
        return out.stdout.decode().strip() or "unknown"
    except OSError:
        return "unknown"


def shared_finetunes(rows: Rows) -> dict[str, dict[str, Any]]:
    """Finished rows that fine-tuned themselves, by ``model|seed|widths``: a row with the
    same widths and seed reuses their test accuracy (the fine-tune is deterministic)."""
    return {
        f"{r['model']}|{r['seed']}|{r['widths']}": r
        for r in rows
        if r.get("shared_finetune") is None
    }


def run_rows(
    rows: Rows,
    todo: list[dict[str, Any]],
    run_row: Callable[[dict[str, Any], dict[str, dict[str, Any]]], dict[str, Any]],
    describe: Callable[[dict[str, Any]], str],
) -> int:
    """Run every task with :func:`shared_finetunes`, record each row at once, log it."""
    log(f"{len(todo)} rows to run ({len(rows.rows)} done)")
    for task in todo:
        row = run_row(task, shared_finetunes(rows))
        rows.add(row)
        log(f"{row['key']}: {describe(row)}")
    return len(todo)


def run_benchmark(
    a: Any,
    tasks: Callable[[Any, Rows], list[dict[str, Any]]],
    run_row: Callable[[dict[str, Any], dict[str, dict[str, Any]]], dict[str, Any]],
    describe: Callable[[dict[str, Any]], str],
    write_results: Callable[[Any, Rows, float, int], None],
) -> int:
    """A resumable benchmark's main: rows still to run (``tasks``), then the results.

    ``a`` are the parsed arguments (``out``, ``report_only``); with ``report_only`` only
    ``write_results`` runs, on the rows already in ``a.out / "rows.jsonl"``.
    """
    t0 = time.perf_counter()
    rows = Rows(a.out / "rows.jsonl")
    ran = 0 if a.report_only else run_rows(rows, tasks(a, rows), run_row, describe)
    write_results(a, rows, time.perf_counter() - t0, ran)
    return 0


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, var**0.5


def mean_drop(rows: list[dict[str, Any]]) -> float:
    """Mean test top-1 change in pp, each row against its own ``baseline_top1``.

    A table may prune more than one trained baseline (one retrained on a new machine).
    """
    return mean_std([100 * (r["test_top1"] - r["baseline_top1"]) for r in rows])[0]


# ----------------------------------------------------------------- latency benchmarks
def machine_tag() -> str:
    """A short file-name tag for this machine: CPU model and core count."""
    import re

    from iaprune.cost import device_name

    cpu = re.sub(r"[^a-z0-9]+", "-", device_name("cpu").lower()).strip("-")
    return f"{cpu}-{os.cpu_count()}c"


def loadavg() -> str:
    """1/5/15-minute load averages, or 'n/a' (how busy the shared machine was)."""
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def cifar_model(name: str, width: float, seed: int = 0) -> torch.nn.Module:
    """A random-weight CIFAR model (10 classes, 3x32x32 input) in eval mode."""
    from iaprune.models import create_model

    torch.manual_seed(seed)
    return create_model(name, num_classes=10, in_channels=3, width_mult=width).eval()


def latency_env(threads: int) -> dict[str, Any]:
    """Versions and machine facts a latency result depends on."""
    from iaprune.cost import device_name

    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = "not installed"
    return {
        "cpu": device_name("cpu"),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "onnxruntime": ort,
        "iaprune": iaprune.__version__,
        "threads": threads,
        "command": " ".join(["python", *sys.argv]),
    }


HEURISTIC_METHODS = {"tp-global": "global", "knapsack": "knapsack", "ranking": "ranking"}
HEURISTIC_METHODS["inner"] = "inner"
"""Benchmark method name -> the warm-start heuristic it runs (``iaprune.search.HEURISTICS``)."""


def heuristic_keep(pruner: Any, space: Any, method: str) -> dict[str, int]:
    """Widths of heuristic ``method`` (``uniform`` or :data:`HEURISTIC_METHODS`) on ``space``'s
    budget; the same functions iaprune enqueues as warm starts."""
    from iaprune.search import HEURISTICS

    if method == "uniform":
        return space.keep_for(space.uniform_params())
    keep = HEURISTICS.get(HEURISTIC_METHODS[method])(pruner, space.projection)
    if keep is None:
        raise ValueError(f"{method} does not apply to this model")
    return keep
