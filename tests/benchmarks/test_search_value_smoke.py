"""The search-value benchmark runs end to end in its ``--smoke`` mode (synthetic, tiny)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "search_value.py"
REQUIRED = ["model", "budget", "method", "seed", "test_top1", "baseline_top1", "macs_ratio"]


def test_smoke_run_trains_baselines_alone_then_writes_every_required_column_and_resumes(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "IAPRUNE_NO_PROGRESS": "1"}
    cmd = [sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path)]
    first = subprocess.run(
        [*cmd, "--baselines-only"], capture_output=True, text=True, env=env, timeout=900
    )
    assert first.returncode == 0, first.stderr[-2000:]
    assert "0 rows to run (0 done)" in first.stdout
    assert (tmp_path / "baseline-vgg11" / "baseline.json").is_file()
    cmd += ["--methods", "iaprune-local,uniform"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    with (tmp_path / "search_value_runs.csv").open() as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames is not None and set(REQUIRED) <= set(reader.fieldnames)
        rows = list(reader)
    assert {r["method"] for r in rows} == {"iaprune-local", "uniform"}
    for row in rows:
        assert 0 < float(row["macs_ratio"]) <= float(row["budget"]) + 1e-9
        assert 0 <= float(row["test_top1"]) <= 1
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    assert again.returncode == 0 and "0 rows to run (2 done)" in again.stdout
