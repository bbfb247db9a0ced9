"""The pipeline's stage sequences, called as functions (the CLI only parses and prints)."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pytest

from iaprune.cli._args import run_config
from iaprune.cli.main import build_parser
from iaprune.config import RunConfig
from iaprune.cost import Interval
from iaprune.errors import IAPruneError
from iaprune.pipeline import LatencyCheck, pick_trial, run_finetune, run_search_stages
from iaprune.pruning import PruningSpec
from iaprune.rundir import RunDir
from iaprune.search import SearchResult
from iaprune.session import Session
from tests.conftest import tiny_args


def _config(**options: str | int | None) -> RunConfig:
    return run_config(build_parser().parse_args(["search", *tiny_args(**options)]))


def _trials(run: Path, study: str) -> int:
    storage = f"sqlite:///{run / 'study.db'}"
    return len(optuna.load_study(study_name=study, storage=storage).trials)


def test_search_stages_write_the_result_and_a_resume_does_not_search_again(tmp_path) -> None:
    run = tmp_path / "run"
    done = run_search_stages(run, _config())
    assert done.result is not None and not done.joined and done.study == "run"
    assert PruningSpec.load(run / "spec.json") == done.result.spec
    assert SearchResult.load(RunDir(run)).to_dict() == done.result.to_dict()
    assert (run / "baseline.pt").is_file() and not (run / "pruned.pt").exists()
    trials = _trials(run, "run")

    again = run_search_stages(run, _config(), resume=True)
    assert again.result is not None and again.result.to_dict() == done.result.to_dict()
    assert _trials(run, "run") == trials  # nothing was searched again

    more = run_search_stages(run, _config(trials=3), resume=True)
    assert more.result is not None and more.result.trials == 3


def test_pick_trial_points_the_result_at_another_finished_trial(received_run: Path) -> None:
    session = Session.open(received_run)
    result = SearchResult.load(session.run)
    base = session.finished_baseline_model()
    row = next(h for h in result.history if h["number"] != result.best_trial)

    picked = pick_trial(result, row["number"], session, base)
    assert picked.best_trial == row["number"] and picked.best_value == row["value"]
    assert picked.spec.keep == row["keep"] and picked.ratios == row["ratios"]
    assert set(picked.spec.kept_indices) == set(row["keep"])  # complete: filters chosen
    assert result.best_trial != row["number"]  # the loaded result is left as it was

    with pytest.raises(IAPruneError, match="trial 999 did not finish"):
        pick_trial(result, 999, session, base)


def test_finetune_trains_once_then_reports_and_repairs(received_run: Path) -> None:
    report = run_finetune(received_run, epochs=2)
    assert report is not None and report["finetune"]["epochs"] == 2
    assert len((RunDir(received_run).read_dict("finetune.json"))["epochs"]) == 2
    written = (received_run / "pruned.pt").stat().st_mtime_ns
    spec = PruningSpec.load(received_run / "spec.json")

    (received_run / "spec.json").unlink()  # a kill right after pruned.pt was written
    again = run_finetune(received_run, epochs=2)
    assert (received_run / "pruned.pt").stat().st_mtime_ns == written  # not trained again
    assert again is not None and again["pruned"]["params"] == report["pruned"]["params"]
    assert PruningSpec.load(received_run / "spec.json") == spec  # rebuilt from pruned.pt


def _interval(value: float, spread: float = 0.01) -> Interval:
    return Interval(value, value * (1 - spread), value * (1 + spread), 0.95, 5)


def test_latency_check_records_every_budget_in_report_order(caplog) -> None:
    check = LatencyCheck(_interval(0.5), _interval(2.0), _interval(4.0), 5, 0.05, [])
    assert list(check.to_dict()) == [
        "ratio",
        "pruned_ms",
        "baseline_ms",
        "rounds",
        "tolerance",
        "flagged",
    ]
    check.check_budget("budget_ratio", 0.6, check.ratio, "")
    assert check.to_dict()["meets_budget"] is True
    with caplog.at_level(logging.WARNING):
        check.check_budget("budget_ms", 2.0, check.pruned_ms, "-ms")  # 2.02 > 2.0
    out = check.to_dict()
    assert list(out)[6:] == ["budget_ratio", "meets_budget", "budget_ms"]
    assert out["meets_budget"] is False and out["budget_ms"] == 2.0
    assert "OVER its latency budget" in caplog.text and "--max-latency-ms 2" in caplog.text
