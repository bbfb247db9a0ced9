"""A trial whose evaluation raises fails that trial only; the search goes on."""

from __future__ import annotations

import logging

import optuna
import pytest
import torch

from iaprune.config import ObjectiveConfig, SearchConfig
from iaprune.cost import StaticCostModel
from iaprune.errors import IAPruneError
from iaprune.models import create_model
from iaprune.pruning import Pruner
from iaprune.search import CandidateEvaluator, SearchSpace, run_search


class Flaky(CandidateEvaluator):
    """Raises on the calls listed in ``bad`` (1-based)."""

    bad: set[int] = set()
    calls = 0

    def __call__(self, keep, *, seed=None):
        type(self).calls += 1
        if type(self).calls in self.bad:
            raise RuntimeError("candidate exploded")
        return super().__call__(keep, seed=seed)


def _flaky(bad: set[int]) -> tuple[Flaky, SearchSpace]:
    torch.manual_seed(0)
    model = create_model("test_vgg", num_classes=4, in_channels=1).eval()
    gen = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 4, (16,), generator=gen))
        for _ in range(3)
    ]
    pruner = Pruner(model, batches[0][0][:1])
    Flaky.bad, Flaky.calls = bad, 0
    evaluator = Flaky(
        pruner,
        StaticCostModel(),
        calibration=batches[:2],
        val_batches=batches[2:],
    )
    return evaluator, SearchSpace.from_groups(pruner.groups, min_ratio=0.1)


def _config(trials: int) -> SearchConfig:
    return SearchConfig(sampler="random", trials=trials, objective=ObjectiveConfig(max_macs=0.9))


def test_raising_trial_is_recorded_as_failed_and_search_continues(tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    result = run_search(*_flaky({2}), _config(4), storage=storage)
    assert result.failed == 1 and result.trials == 3
    assert result.summary()["failed_trials"] == 1
    study = optuna.load_study(study_name="iaprune", storage=storage)
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed[0].user_attrs["error"] == "candidate exploded"


def test_all_trials_failing_is_a_one_line_error(tmp_path) -> None:
    with pytest.raises(IAPruneError, match="all 2 trials failed; first error: candidate exploded"):
        run_search(*_flaky({1, 2}), _config(2), storage=f"sqlite:///{tmp_path / 's.db'}")


def test_a_failed_trial_logs_one_line_and_its_traceback_at_debug(tmp_path, caplog) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    optuna_logger = logging.getLogger("optuna")
    optuna_logger.addHandler(handler)  # Optuna's records do not propagate to caplog
    try:
        with caplog.at_level(logging.DEBUG, logger="iaprune"):
            run_search(*_flaky({2}), _config(3), storage=f"sqlite:///{tmp_path / 's.db'}")
    finally:
        optuna_logger.removeHandler(handler)
    records += caplog.records
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == ["trial 1 failed: candidate exploded"]
    assert all(r.exc_info is None for r in warnings)
    debug = [r for r in records if r.levelno == logging.DEBUG and r.exc_info]
    assert len(debug) == 1 and "candidate exploded" in str(debug[0].exc_info[1])
