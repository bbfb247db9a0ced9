"""Session stages called directly: a new run made self-contained, finished stages found."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from iaprune.artefacts import finetune_done, finetune_record, unfinished_stage
from iaprune.config import FinetuneConfig, ObjectiveConfig, RunConfig, SearchConfig
from iaprune.errors import IAPruneError
from iaprune.search import SearchResult
from iaprune.session import Session
from iaprune.train.checkpoint import load_state


def test_a_checkpoint_is_copied_in_as_the_finished_baseline(received_run: Path, tmp_path) -> None:
    checkpoint = tmp_path / "weights.pt"
    torch.save(load_state(received_run / "baseline.pt")["state_dict"], checkpoint)
    config = RunConfig(model="test_vgg", width_mult=1.0, checkpoint=str(checkpoint))
    session = Session.create(tmp_path / "run", config)

    stored = load_state(tmp_path / "run" / "baseline.pt")
    assert stored["complete"] and stored["source"] == str(checkpoint.absolute())
    assert session.config.checkpoint == str(checkpoint.absolute())
    checkpoint.unlink()  # the run no longer needs the external file
    base = Session.open(tmp_path / "run").baseline()  # never trains: it is finished
    for name, weight in base.state_dict().items():
        assert torch.equal(weight.cpu(), stored["state_dict"][name])
    assert unfinished_stage(session.run, checkpoint=session.config.checkpoint) == "search"


def test_search_done_needs_as_many_trials_as_asked(received_run: Path) -> None:
    session = Session.open(received_run)
    done = session.search_done()
    assert done is not None and done.to_dict() == SearchResult.load(session.run).to_dict()
    more = replace(session.config.search, trials=done.trials + done.failed + 1)
    session.config = replace(session.config, search=more)
    assert session.search_done() is None


def test_a_malformed_search_json_is_one_line(received_run: Path) -> None:
    data = json.loads((received_run / "search.json").read_text())
    del data["best_trial"]
    (received_run / "search.json").write_text(json.dumps(data))
    with pytest.raises(IAPruneError, match=r"search\.json is invalid: .*best_trial"):
        Session.open(received_run).search_done()


def test_finetune_done_only_for_the_same_spec_and_settings(received_run: Path) -> None:
    session = Session.open(received_run)
    spec = session.search_done().spec  # type: ignore[union-attr]
    ft = session.config.finetune
    assert finetune_done(session.run, spec, ft)
    assert not finetune_done(session.run, spec, replace(ft, epochs=ft.epochs + 1))
    other = {**spec.keep, next(iter(spec.keep)): 1}
    assert not finetune_done(session.run, replace(spec, keep=other, kept_indices={}), ft)
    assert finetune_record(spec, ft)["keep"] == dict(spec.keep)


def test_load_pruned_names_the_unfinished_stage(tmp_path) -> None:
    config = RunConfig(
        model="test_vgg",
        width_mult=1.0,
        baseline_epochs=0,
        search=SearchConfig(trials=1),
        finetune=FinetuneConfig(epochs=1),
    )
    session = Session.create(tmp_path / "run", config)
    with pytest.raises(IAPruneError, match="its baseline stage is not finished"):
        session.load_pruned()
    session.baseline()
    with pytest.raises(IAPruneError, match="its search stage is not finished"):
        session.load_pruned()


def test_the_latency_budgets_checked_at_start_are_not_timed_again_by_the_search(
    tmp_path: Path,
) -> None:
    # start times a latency budget A/B; the search is told so (SearchPlan.run's checked)
    objective = ObjectiveConfig(max_latency_ms=1e6)
    config = RunConfig(model="test_vgg", width_mult=1.0, search=SearchConfig(objective=objective))
    assert Session.create(tmp_path / "a", config).checked_budgets == ("latency_ms",)
    macs = replace(config, search=SearchConfig())
    assert Session.create(tmp_path / "b", macs).checked_budgets == ()
