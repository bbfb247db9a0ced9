"""Search: seeded reproducibility, resume after a crash, budgets, the uniform baseline."""

from __future__ import annotations

from dataclasses import replace

import optuna
import pytest

from iaprune.config import ObjectiveConfig, SearchConfig
from iaprune.cost import CostModel, measure_cost
from iaprune.errors import IAPruneError
from iaprune.search import CandidateEvaluator, SearchSpace, run_search
from tests.search.evaluators import tiny_evaluator


def _evaluator(seed: int = 0) -> tuple[CandidateEvaluator, SearchSpace]:
    evaluator = tiny_evaluator("test_vgg", seed=seed)
    return evaluator, SearchSpace.from_groups(evaluator.pruner.groups, min_ratio=0.1)


def _config(**kw) -> SearchConfig:
    kw.setdefault("objective", ObjectiveConfig(max_macs=0.5))
    return SearchConfig(**kw)


def _storage(tmp_path, name: str = "s") -> str:
    return f"sqlite:///{tmp_path / name}.db"


def test_same_seed_same_best_config(tmp_path) -> None:
    cfg = _config(sampler="gp", trials=12, seed=3)
    first = run_search(*_evaluator(), cfg, storage=_storage(tmp_path, "a"))
    second = run_search(*_evaluator(), cfg, storage=_storage(tmp_path, "b"))
    assert first.spec.keep == second.spec.keep
    assert [h["keep"] for h in first.history] == [h["keep"] for h in second.history]
    assert first.trials == 12
    assert first.ratios["macs"] <= 0.5


def test_other_seed_explores_differently(tmp_path) -> None:
    a = run_search(
        *_evaluator(), _config(sampler="random", trials=3, seed=0), storage=_storage(tmp_path, "a")
    )
    b = run_search(
        *_evaluator(), _config(sampler="random", trials=3, seed=1), storage=_storage(tmp_path, "b")
    )
    assert [h["keep"] for h in a.history] != [h["keep"] for h in b.history]


def test_resume_keeps_finished_trials_and_fails_running_ones(tmp_path) -> None:
    storage = _storage(tmp_path)
    cfg = _config(sampler="tpe", trials=4, seed=0)
    first = run_search(*_evaluator(), cfg, storage=storage)
    # Simulate a crash in the middle of trial 5: it stays RUNNING in storage.
    study = optuna.load_study(study_name=cfg.study_name, storage=storage)
    crashed = study.ask()
    assert study.trials[crashed.number].state == optuna.trial.TrialState.RUNNING

    with pytest.raises(IAPruneError, match="--resume"):
        run_search(*_evaluator(), cfg, storage=storage)
    resumed = run_search(
        *_evaluator(), _config(sampler="tpe", trials=7, seed=0), storage=storage, resume=True
    )
    assert resumed.trials == 7
    assert resumed.history[:4] == first.history
    study = optuna.load_study(study_name=cfg.study_name, storage=storage)
    assert study.trials[crashed.number].state == optuna.trial.TrialState.FAIL


def test_unreachable_budget_names_the_smallest_reachable(tmp_path) -> None:
    cfg = _config(trials=2, objective=ObjectiveConfig(max_macs=0.0001))
    with pytest.raises(IAPruneError, match=r"unreachable.*reaches 0\.\d+"):
        run_search(*_evaluator(), cfg, storage=_storage(tmp_path))


def test_uniform_baseline_meets_budget_with_one_ratio(tmp_path) -> None:
    evaluator, space = _evaluator()
    result = run_search(
        evaluator, space, _config(sampler="uniform", trials=5), storage=_storage(tmp_path)
    )
    assert result.trials == 1
    assert result.ratios["macs"] <= 0.5
    ratios = {
        round(k / space.groups[i].channels, 1) for i, k in enumerate(result.spec.keep.values())
    }
    assert len(ratios) <= 2  # one ratio, up to rounding to whole channels
    # Bisection lands close to the budget, not far under it.
    assert result.ratios["macs"] > 0.35


def test_weighted_objective_trades_accuracy_for_macs(tmp_path) -> None:
    cfg = _config(
        sampler="random", trials=5, objective=ObjectiveConfig(kind="weighted", w_macs=1.0)
    )
    result = run_search(*_evaluator(), cfg, storage=_storage(tmp_path))
    for h in result.history:
        assert h["value"] == pytest.approx(h["accuracy"] - h["ratios"]["macs"])


def test_constraint_infeasible_trials_are_not_chosen(tmp_path) -> None:
    result = run_search(
        *_evaluator(), _config(sampler="random", trials=10, seed=2), storage=_storage(tmp_path)
    )
    best = next(h for h in result.history if h["number"] == result.best_trial)
    assert best["feasible"] and best["ratios"]["macs"] <= 0.5
    assert all(h["value"] <= best["value"] for h in result.history if h["feasible"])


def test_constrained_value_is_accuracy_and_best_is_most_accurate_feasible(tmp_path) -> None:
    result = run_search(
        *_evaluator(), _config(sampler="random", trials=8, seed=3), storage=_storage(tmp_path)
    )
    for h in result.history:  # the budget enters only as a constraint, never the value
        assert h["value"] == pytest.approx(h["accuracy"])
    feasible = [h["accuracy"] for h in result.history if h["feasible"]]
    assert result.accuracy == max(feasible)


def _latency_evaluator() -> tuple[CandidateEvaluator, SearchSpace]:
    """Like _evaluator, but latency is a deterministic function of the kept widths."""
    evaluator, space = _evaluator()

    class FakeLatency(CostModel):
        has_latency = uses_keep = True

        def measure(self, model, input_shape, keep=None):
            cost = measure_cost(model, input_shape)
            widths = keep or evaluator.pruner.original
            return replace(cost, latency_ms=0.01 * sum(widths.values()))

    evaluator.cost_model = FakeLatency()
    evaluator.baseline = evaluator.measure(evaluator.pruner.model, None)
    return evaluator, space


def test_latency_budget_is_a_constraint(tmp_path) -> None:
    evaluator, space = _latency_evaluator()
    full = evaluator.baseline.latency_ms
    cfg = _config(sampler="random", trials=8, objective=ObjectiveConfig(max_latency_ms=full / 2))
    result = run_search(evaluator, space, cfg, storage=_storage(tmp_path))
    best = next(h for h in result.history if h["number"] == result.best_trial)
    assert best["latency_ms"] <= full / 2
    assert all(h["feasible"] == (h["latency_ms"] <= full / 2) for h in result.history)


def test_unreachable_latency_budget(tmp_path) -> None:
    evaluator, space = _latency_evaluator()
    cfg = _config(trials=2, objective=ObjectiveConfig(max_latency_ms=1e-6))
    with pytest.raises(IAPruneError, match="latency_ms <= 1e-06 ms is unreachable"):
        run_search(evaluator, space, cfg, storage=_storage(tmp_path))


def test_a_budget_the_caller_checked_is_not_refused_by_the_search_again(tmp_path) -> None:
    # the run's pre-check times latency budgets A/B and accepts one at the model's floor;
    # the search's own check (one sequential timing) must not refuse it afterwards
    evaluator, space = _latency_evaluator()
    smallest = evaluator.costs(space.smallest())[0].latency_ms
    cfg = _config(
        sampler="random", trials=2, objective=ObjectiveConfig(max_latency_ms=smallest * 0.99)
    )
    with pytest.raises(IAPruneError, match="is unreachable"):
        run_search(evaluator, space, cfg, storage=_storage(tmp_path, "a"))
    with pytest.raises(IAPruneError, match=r"no trial of 2 met the budget") as err:
        run_search(evaluator, space, cfg, storage=_storage(tmp_path, "b"), checked=("latency_ms",))
    assert "unreachable" not in str(err.value)


@pytest.mark.parametrize("cost", ["macs", "latency"])
def test_pareto_front_is_non_dominated_and_contains_choice(tmp_path, cost) -> None:
    evaluator, space = _latency_evaluator()
    cfg = _config(
        sampler="gp", trials=12, objective=ObjectiveConfig(kind="pareto", pareto_cost=cost)
    )
    result = run_search(evaluator, space, cfg, storage=_storage(tmp_path))
    front = result.pareto
    assert front and result.best_trial in {p["number"] for p in front}
    for p in front:
        expected = p["latency_ms"] if cost == "latency" else p["ratios"]["macs"]
        assert p["cost"] == pytest.approx(expected)
    for row in result.history:
        dominated = any(
            p["accuracy"] >= row["accuracy"]
            and p["cost"] <= row["cost"]
            and (p["accuracy"] > row["accuracy"] or p["cost"] < row["cost"])
            for p in front
        )
        assert dominated or row["number"] in {p["number"] for p in front}
