"""A latency budget as a user states it, end to end on a tiny model (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iaprune.cli.main import main
from tests.conftest import TINY_RUN_ARGS

BUDGET = ["--backend", "onnxruntime", "--batch-size-latency", "1"]


def test_generous_latency_budget_is_met_and_checked_in_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    run = tmp_path / "run"
    args = ["prune", "--run-dir", str(run), *TINY_RUN_ARGS, *BUDGET, "--max-latency-ms", "500"]
    assert main(args) == 0
    report = json.loads((run / "report.json").read_text())
    check = report["latency_check"]
    assert check["budget_ms"] == 500 and check["meets_budget"] is True
    assert check["pruned_ms"]["high"] <= 500
    assert check["rounds"] >= 5 and check["ratio"]["low"] <= check["ratio"]["value"]
    assert check["ratio"]["value"] <= check["ratio"]["high"]
    assert report["latency_env"]["backend"] == "onnxruntime"
    assert report["latency_env"]["interleaved"] is True
    assert report["search"]["budgets"] == {"latency_ms": 500.0}
    out = capsys.readouterr().out
    assert "latency ratio" in out and "meets the 500 ms budget" in out
    md = (run / "report.md").read_text()
    assert "latency budget 500 ms" in md and "met" in md


def test_unreachable_latency_budget_names_the_smallest_reachable_latency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    run = tmp_path / "run"
    args = ["prune", "--run-dir", str(run), *TINY_RUN_ARGS, *BUDGET, "--max-latency-ms", "1e-6"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "latency_ms <= 1e-06 ms is unreachable" in err[0] and "reaches" in err[0]
