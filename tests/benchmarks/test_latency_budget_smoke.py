"""The latency-budget benchmark runs end to end in its ``--smoke`` mode (synthetic, tiny)."""

from __future__ import annotations

import csv
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "latency_budget.py"
REQUIRED = [
    "model",
    "backend",
    "batch",
    "budget",
    "method",
    "seed",
    "test_top1",
    "baseline_top1",
    "latency_ratio",
    "latency_ratio_high",
    "macs_ratio",
]


def test_smoke_run_writes_every_required_column_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    env = {**os.environ, "IAPRUNE_NO_PROGRESS": "1"}
    cmd = [sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path)]
    cmd += ["--methods", "uniform,knapsack"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    with (tmp_path / "latency_budget_runs.csv").open() as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames is not None and set(REQUIRED) <= set(reader.fieldnames)
        rows = list(reader)
    assert {r["method"] for r in rows} == {"uniform", "knapsack"}
    for row in rows:
        assert row["backend"] == "onnxruntime" and row["batch"] == "32"
        low, high = float(row["latency_ratio"]), float(row["latency_ratio_high"])
        assert 0 < low <= high
        assert row["within_budget"] == str(high <= float(row["budget"]))
        assert 0 < float(row["macs_ratio"]) < 1 and 0 <= float(row["test_top1"]) <= 1
    assert (tmp_path / "latency_budget.png").stat().st_size > 0
    # the rerun only re-reads the rows: its main() in this process (no interpreter start),
    # with the script's folder first on sys.path as when run as a script
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    main = importlib.import_module(SCRIPT.stem).main
    threads = torch.get_num_threads()
    capsys.readouterr()
    try:
        assert main(cmd[2:]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "0 rows to run (2 done)" in capsys.readouterr().out
    first = json.loads((tmp_path / "rows.jsonl").read_text().splitlines()[0])
    _retime_a_row(tmp_path, first, capsys)


def _retime_a_row(out: Path, row: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """``retime.py`` times a finished row's widths again: refused without a spec, then timed."""
    from iaprune import Session

    retime = importlib.import_module("retime").main
    run = out / "runs" / row["key"]
    with pytest.raises(SystemExit) as refused:
        retime([str(run)])
    assert refused.value.code == 2
    assert "no spec.json" in capsys.readouterr().err
    session = Session.open(run)
    keep = {k: int(v) for k, v in json.loads(row["widths"]).items()}
    session.pruner(session.baseline()).spec(keep).save(run / "spec.json")
    threads = torch.get_num_threads()
    try:
        retime([str(run), "--repeats", "2"])
    finally:
        torch.set_num_threads(threads)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "latency ratio" in ln]
    assert len(lines) == 2
    for line in lines:
        value, low, high = (float(x.strip("[],")) for x in line.split()[-3:])
        assert 0 < low <= value <= high


def test_report_measures_each_row_against_its_own_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeds that prune different trained files: the drop is the mean of the rows' own drops."""
    rows = []
    for seed, (base, top1) in enumerate([(0.90, 0.88), (0.92, 0.89)]):
        rows.append(
            {
                "key": f"m_0.5_uniform_s{seed}",
                "model": "m",
                "budget": 0.5,
                "method": "uniform",
                "seed": seed,
                "batch": 32,
                "test_top1": top1,
                "baseline_top1": base,
                "latency_ratio": 0.45,
                "latency_ratio_high": 0.47,
                "within_budget": True,
                "macs_ratio": 0.3,
            }
        )
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    main = importlib.import_module(SCRIPT.stem).main
    assert main(["--out", str(tmp_path), "--report-only"]) == 0
    line = next(
        ln
        for ln in (tmp_path / "latency_budget_results.md").read_text().splitlines()
        if ln.startswith("| m |")
    )
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[4] == "88.50 ± 0.71"
    assert cells[5] == "-2.50"  # (-2 - 3) / 2; the first row's baseline alone would give -1.50
