"""The Fashion-MNIST benchmark runs end to end in its ``--smoke`` mode (digits, tiny)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fashion_mnist.py"
METHODS = {"iaprune", "tpe", "random", "eagleeye", "uniform", "tp-global", "tp-isomorphic"}


def _run(out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IAPRUNE_NO_PROGRESS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_smoke_run_writes_rows_at_the_budget_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "fm"
    first = _run(out)
    assert first.returncode == 0, first.stderr[-2000:]
    with (out / "fashion_mnist_runs.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["method"] for r in rows} == METHODS
    for r in rows:  # every method meets the same MACs budget
        assert 0 < float(r["macs_ratio"]) <= float(r["budget"]) + 1e-9
        assert 0 <= float(r["test_top1"]) <= 1
        assert r["baseline_top1"] == rows[0]["baseline_top1"]
    md = (out / "fashion_mnist_results.md").read_text()
    assert "| iaprune |" in md and "| tp-global |" in md

    again = _run(out)  # every row is done: a rerun only re-reads them
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 rows to run (7 done)" in again.stdout
