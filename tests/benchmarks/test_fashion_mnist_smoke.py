"""The Fashion-MNIST benchmark runs end to end in its ``--smoke`` mode (digits, tiny)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fashion_mnist.py"
FIDELITY = SCRIPT.parent / "proxy_fidelity.py"
METHODS = {"iaprune", "tpe", "random", "eagleeye", "uniform", "tp-global", "tp-isomorphic"}


def _run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IAPRUNE_NO_PROGRESS": "1"}
    return subprocess.run(
        [sys.executable, str(script), "--smoke", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def smoke(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One smoke run of the benchmark, shared by the tests of this module."""
    out = tmp_path_factory.mktemp("fm")
    return out, _run(SCRIPT, "--out", str(out))


def test_smoke_run_writes_rows_at_the_budget_and_resumes(smoke) -> None:
    out, first = smoke
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

    again = _run(SCRIPT, "--out", str(out))  # every row is done: a rerun only re-reads them
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 rows to run (7 done)" in again.stdout


def test_picks_fidelity_scores_the_allocations_the_methods_chose(smoke, tmp_path: Path) -> None:
    out, first = smoke
    assert first.returncode == 0, first.stderr[-2000:]
    fid = tmp_path / "fid"
    done = _run(FIDELITY, "--picks", str(out), "--out", str(fid))
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in (fid / "picks.jsonl").read_text().splitlines()]
    with (out / "fashion_mnist_runs.csv").open() as fh:
        tested = {float(r["test_top1"]) for r in csv.DictReader(fh)}
    assert 2 <= len(rows) <= len(METHODS)  # one row per distinct chosen allocation
    for row in rows:
        assert row["test_top1"] in tested  # the benchmark's own fine-tuned accuracy
        assert set(row["scores"]) == {"bn", "sgd30"}
        assert row["macs_ratio"] <= 0.5 + 1e-9
    assert (fid / "proxy_fidelity_picks_test_vgg_0.5.md").is_file()
