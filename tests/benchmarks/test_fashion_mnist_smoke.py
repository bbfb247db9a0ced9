"""The Fashion-MNIST benchmark runs end to end in its ``--smoke`` mode (digits, tiny)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fashion_mnist.py"
METHODS = {"uniform-l1", "random", "tpe", "gp-bo", "gp-bo-latency", "tp-magnitude"}


def _run(out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IAPRUNE_NO_PROGRESS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_smoke_run_writes_table_and_efficiency_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "fm"
    first = _run(out)
    assert first.returncode == 0, first.stderr[-2000:]
    with (out / "fashion_mnist_results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["method"] for r in rows} == METHODS
    for r in rows:  # every method meets the same MACs budget (torch-pruning may undershoot)
        assert 0 < float(r["macs_ratio"]) <= float(r["budget_max_macs"]) + 1e-9
        assert 0 <= float(r["test_top1"]) <= 1
    gp = next(r for r in rows if r["method"] == "gp-bo")
    assert gp["n_seeds"] == "2"
    with (out / "fashion_mnist_search_efficiency.csv").open() as fh:
        eff = list(csv.DictReader(fh))
    for method in ("random", "tpe", "gp-bo"):
        rows_m = [e for e in eff if e["method"] == method and e["seed"] == "0"]
        curve = [float(e["best_feasible_so_far"]) for e in rows_m]
        assert curve and all(b >= a for a, b in zip(curve, curve[1:], strict=False))
    assert (out / "fashion_mnist_search_efficiency.png").stat().st_size > 0
    md = (out / "fashion_mnist_results.md").read_text()
    assert "GP-BO (ours)" in md and "uniform L1" in md

    again = _run(out)  # everything is cached: a rerun only re-reads it
    assert again.returncode == 0, again.stderr[-2000:]
    assert "cached" in again.stdout
