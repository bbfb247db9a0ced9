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
    assert "latency ratio" in out and "latency budget 500 ms:" in out and "upper bound: met" in out
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


def test_prefixes_of_flags_are_not_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    # --max-lat was taken as --max-latency-ms (argparse prefix matching) before
    # --max-latency existed; a flag now means exactly what it says
    with pytest.raises(SystemExit) as exc:
        main(["prune", "--max-lat", "0.4"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --max-lat" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2", "nan"])
def test_a_latency_ratio_outside_0_1_is_refused_before_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    run = tmp_path / "run"
    assert main(["prune", "--run-dir", str(run), *TINY_RUN_ARGS, "--max-latency", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "max_latency is a ratio of the original model" in err[0]
    assert not run.exists()


def test_an_unreachable_latency_ratio_is_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    args = ["prune", "--run-dir", str(run), *TINY_RUN_ARGS, "--max-latency", "0.0001"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "budget latency <= 0.0001 of the original is unreachable" in err[0]
    assert "reaches" in err[0]
    assert not run.exists()  # refused before the baseline was trained


LATENCY_RUN = [  # the smallest run whose latency scales with its widths (later flags win)
    *TINY_RUN_ARGS,
    *("--dataset", "synthetic", "--model", "vgg11", "--width-mult", "0.25"),
    *("--trials", "3", "--round-to", "2", "--rescore", "0"),
]


def test_a_latency_ratio_budget_puts_every_candidate_on_it_and_measures_the_choice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["prune", "--run-dir", str(run), *LATENCY_RUN, "--max-latency", "0.8"]) == 0
    search = json.loads((run / "search.json").read_text())
    table = json.loads((run / "latency_table.json").read_text())
    assert table["layers"]  # built automatically for the latency budget
    for trial in search["history"]:  # every candidate priced by the table, on the budget
        assert trial["ratios"]["latency"] <= 0.8 + 1e-9
        assert trial["ratios"]["latency"] > 0.6
    fit = search["latency_fit"]
    assert fit["key"] == "latency" and fit["budget"] == 0.8
    assert fit["attempts"][0]["keep"] == search["history"][search["best_trial"]]["keep"]
    assert fit["meets_budget"] == (fit["measured_high"] <= 0.8)
    assert (
        json.loads((run / "spec.json").read_text())["keep"]
        == fit["attempts"][fit["chosen"]]["keep"]
    )
    report = json.loads((run / "report.json").read_text())
    check = report["latency_check"]
    assert check["budget_ratio"] == 0.8
    assert check["meets_budget"] == (check["ratio"]["high"] <= 0.8)
    assert report["search"]["latency_fit"] == fit
    out = capsys.readouterr().out
    assert "latency budget 0.8 of the baseline" in out and "predicted" in out
