"""The search assembled from plain inputs (search.plan) and the latency table's policy."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from iaprune.config import CostConfig, ObjectiveConfig, SearchConfig
from iaprune.cost import StaticCostModel
from iaprune.cost.lut.policy import TABLE_CALIBRATE, search_cost
from iaprune.errors import IAPruneError
from iaprune.search import AllocationSpace, CandidateEvaluator
from iaprune.search.choice import LazyScorer
from iaprune.search.plan import (
    ScoringData,
    SearchPlan,
    check_budget,
    final_evaluator,
    projects_latency,
    trial_cost,
    warn_off_multiple,
)
from iaprune.timing import TimingSettings
from tests.search.evaluators import tiny_evaluator


def _data(batch_bytes: int = 4 * 64 * 4) -> ScoringData:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8, generator=gen), torch.randint(0, 4, (64,), generator=gen)
    shuffled = DataLoader(
        TensorDataset(x, y), batch_size=4, shuffle=True, generator=torch.Generator()
    )
    fixed = DataLoader(TensorDataset(x, y), batch_size=4)
    loaders = {"train": shuffled, "train_eval": fixed, "val": fixed}
    return ScoringData(loaders, seed=5, batch_bytes=batch_bytes)


def _config(**kw) -> SearchConfig:
    objective = kw.pop("objective", ObjectiveConfig(max_macs=0.5))
    return SearchConfig(objective=objective, sampler="random", seed=3, **kw)


def test_scoring_batches_are_the_same_at_every_call_whatever_ran_before() -> None:
    data = _data()
    first = data.batches("train", 3)
    torch.rand(100)  # the global RNG moved on
    data.loaders["train"].generator.manual_seed(123)  # type: ignore[union-attr]
    again = data.batches("train", 3)
    assert len(first) == 3
    assert all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for a, b in zip(first, again, strict=True)
    )


def test_training_batches_for_scoring_are_capped_by_bytes() -> None:
    assert len(_data().train_batches(5)) == 5
    assert len(_data(batch_bytes=1 << 29).train_batches(5)) == 2  # 1 GiB / 512 MiB
    assert len(_data(batch_bytes=1 << 31).train_batches(5)) == 1  # never fewer than one


def test_latency_is_projected_only_with_a_constrained_budget_space() -> None:
    latency = ObjectiveConfig(max_latency_ms=5.0)
    assert projects_latency(_config(objective=latency))
    assert not projects_latency(_config(objective=latency, space="free"))
    assert not projects_latency(_config())


def test_trial_cost_needs_no_table_without_a_latency_objective(tmp_path: Path) -> None:
    pruner = tiny_evaluator().pruner
    fallback = tmp_path / "latency_table.json"
    kw = {"table_fallback": fallback, "table_writable": True}
    static = trial_cost(pruner, (1, 8, 8), _config(), CostConfig(), **kw)  # type: ignore[arg-type]
    assert not static.has_latency
    timed = _config(objective=ObjectiveConfig(max_macs=0.5, max_latency_ms=1e4), space="free")
    measured = trial_cost(pruner, (1, 8, 8), timed, CostConfig(latency="measured"), **kw)  # type: ignore[arg-type]
    assert measured.name == "measured"
    assert not fallback.exists()


class _Table:
    """A stand-in latency table with a given leave-one-out error."""

    path = Path("table.json")

    def __init__(self, error: dict[str, float], reliable: bool) -> None:
        self._error, self._reliable = error, reliable

    def fit_error(self) -> dict[str, float]:
        return self._error

    def reliable(self) -> bool:
        return self._reliable


@pytest.mark.parametrize(
    ("error", "reliable", "projected", "expected", "says"),
    [
        ({}, False, False, "predicted", f"--calibrate {TABLE_CALIBRATE}"),
        ({"median_pct": 9.0, "max_pct": 30.0}, False, False, "measured", "measuring every"),
        ({"median_pct": 9.0, "max_pct": 30.0}, False, True, "predicted", "re-projected"),
        ({"median_pct": 2.0, "max_pct": 6.0}, True, False, "predicted", None),
    ],
)
def test_a_table_prices_the_search_only_when_reliable_or_projected(
    caplog, error, reliable, projected, expected, says
) -> None:
    table = _Table(error, reliable)
    with caplog.at_level(logging.WARNING, logger="iaprune"):
        cost = search_cost(table, CostConfig(), projected=projected)  # type: ignore[arg-type]
    assert cost.name == expected
    if expected == "predicted":
        assert cost.table is table  # type: ignore[attr-defined]
    if says is None:
        assert not caplog.records
    else:
        assert says in caplog.text and "table.json" in caplog.text


def test_the_final_scorer_is_built_lazily_and_only_when_it_differs() -> None:
    trial, data = tiny_evaluator(), _data()
    lazy = final_evaluator(trial, data, _config())
    assert isinstance(lazy, LazyScorer)
    final = lazy.build()
    assert isinstance(final, CandidateEvaluator) and lazy.build() is final
    assert (final.finetune_steps, final.distill) == (100, 1.0)
    assert final.val_batches is trial.val_batches and len(final.train_batches) == 16
    same = {"final_steps": 30, "final_distill": 0.5, "finetune_steps": 30, "distill": 0.5}
    for changes in ({"final_steps": 0}, {"rescore": 0}, same):
        assert final_evaluator(trial, data, _config(**changes)) is None


def test_an_unreachable_budget_is_refused_before_any_trial() -> None:
    pruner = tiny_evaluator().pruner
    assert check_budget(pruner, _config(), CostConfig(), round_to=1) == ()  # none timed
    with pytest.raises(IAPruneError):
        check_budget(pruner, _config(objective=ObjectiveConfig(max_macs=1e-6)), CostConfig(), 1)


def test_the_latency_budgets_timed_ab_are_named_for_the_search_not_to_time_again() -> None:
    pruner = tiny_evaluator().pruner
    loose = _config(objective=ObjectiveConfig(max_latency_ms=1e6))
    assert check_budget(pruner, loose, CostConfig(), round_to=1) == ("latency_ms",)


def _plan(trials: int = 3) -> SearchPlan:
    pruner = tiny_evaluator().pruner
    return SearchPlan.build(
        pruner,
        StaticCostModel(),
        _data(),
        _config(trials=trials, rescore=0),
        input_shape=(1, 8, 8),
        round_to=1,
        timing=TimingSettings(),
    )


def test_a_plan_runs_its_search_with_warm_starts_inside_the_workers(tmp_path: Path) -> None:
    plan = _plan()
    assert isinstance(plan.space, AllocationSpace)
    assert list(plan.warm_starts())[0] == "uniform"
    assert {"uniform", "global"} <= set(plan.warm_starts())
    assert plan.evaluator.pruner is plan.pruner and plan.final_evaluator is None
    entered: list[str] = []

    @contextlib.contextmanager
    def workers():
        entered.append("in")
        yield
        entered.append("out")

    storage = f"sqlite:///{tmp_path / 'study'}.db"
    result = plan.run(storage=storage, definition={"k": 1}, workers=workers())
    assert entered == ["in", "out"]
    assert result is not None and result.trials == 3
    assert not result.latency_fit  # no latency budget: nothing re-measured
    assert set(result.spec.keep) == {g.name for g in plan.pruner.groups}


def test_a_plan_joins_a_study_that_already_exists(tmp_path: Path, caplog) -> None:
    storage = f"sqlite:///{tmp_path / 'study'}.db"
    first = _plan().run(storage=storage)
    assert first is not None
    with caplog.at_level(logging.INFO, logger="iaprune"):
        assert _plan().run(storage=storage) is None
    assert "joined study" in caplog.text and "ran 0 trials" in caplog.text


@pytest.mark.parametrize(
    ("objective", "round_to", "warned"),
    [
        (ObjectiveConfig(max_latency=0.5), 2, True),  # off onnxruntime's multiple of 16
        (ObjectiveConfig(max_latency=0.5), 32, False),  # every width a multiple of 16
        (ObjectiveConfig(max_latency=0.5), 16, False),
        (ObjectiveConfig(max_macs=0.5), 2, False),  # no latency in the objective
    ],
)
def test_latency_search_off_the_backends_multiple_warns(
    caplog, objective: ObjectiveConfig, round_to: int, warned: bool
) -> None:
    cost = CostConfig(backend="onnxruntime")
    with caplog.at_level(logging.WARNING, logger="iaprune.search.plan"):
        warn_off_multiple(_config(objective=objective), cost, round_to)
    said = [r.getMessage() for r in caplog.records]
    assert bool(said) == warned
    if warned:
        assert said[0].startswith("--round-to 2 keeps widths that are not multiples of 16")
