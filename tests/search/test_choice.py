"""The final choice: exact warm starts, finalists re-scored by the final evaluator, resume."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import optuna
import pytest
import torch

from iaprune.config import ObjectiveConfig, SearchConfig
from iaprune.cost import StaticCostModel
from iaprune.models import create_model
from iaprune.pruning import Pruner
from iaprune.search import (
    AllocationSpace,
    CandidateEvaluator,
    CandidateResult,
    make_space,
    run_search,
    warm_starts,
)
from iaprune.search.choice import finalists


def _evaluator() -> CandidateEvaluator:
    torch.manual_seed(0)
    model = create_model("test_resnet", num_classes=4, in_channels=1).eval()
    gen = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 4, (16,), generator=gen))
        for _ in range(3)
    ]
    return CandidateEvaluator(
        Pruner(model, batches[0][0][:1]),
        StaticCostModel(),
        calibration=batches[:2],
        val_batches=batches[2:],
    )


class _Scripted:
    """A final evaluator whose score is ``rule(keep)`` (real costs); counts its calls."""

    def __init__(self, inner: CandidateEvaluator, rule: Callable[[Mapping[str, int]], float]):
        self.inner, self.rule, self.calls = inner, rule, 0
        self.pruner = inner.pruner

    def __call__(self, keep: Mapping[str, int], *, seed: int | None = None) -> CandidateResult:
        self.calls += 1
        real = self.inner(keep)
        return CandidateResult(self.rule(keep), real.cost, real.ratios)


def _setup(trials: int = 8, **kw):
    evaluator = _evaluator()
    cfg = SearchConfig(
        objective=ObjectiveConfig(max_macs=0.5), sampler="random", trials=trials, seed=3, **kw
    )
    space = make_space(evaluator.pruner, (1, 8, 8), cfg)
    assert isinstance(space, AllocationSpace)
    return evaluator, space, cfg, warm_starts(evaluator.pruner, space)


def _run(tmp_path, evaluator, space, cfg, starts, final=None, name="s", resume=False):
    storage = f"sqlite:///{tmp_path / name}.db"
    result = run_search(
        evaluator,
        space,
        cfg,
        storage=storage,
        warm_starts=starts,
        final_evaluator=final,
        resume=resume,
    )
    return result, optuna.load_study(study_name=cfg.study_name, storage=storage)


def test_warm_starts_are_evaluated_at_their_exact_widths(tmp_path) -> None:
    evaluator, space, cfg, starts = _setup(trials=3)
    assert set(starts) == {"uniform", "global"}
    # with stage ties the space cannot express the per-layer global allocation itself
    assert space.keep_for(starts["global"].params) != starts["global"].keep
    _, study = _run(tmp_path, evaluator, space, cfg, starts)
    by_name = {t.user_attrs.get("warm_start"): t for t in study.trials}
    assert by_name["global"].user_attrs["keep"] == starts["global"].keep
    assert by_name["uniform"].user_attrs["keep"] == starts["uniform"].keep
    assert by_name["global"].user_attrs["ratios"]["macs"] <= 0.5


def test_finalists_are_the_warm_starts_and_the_best_distinct_searched_trials(tmp_path) -> None:
    evaluator, space, cfg, starts = _setup(trials=10, rescore=3)
    _, study = _run(tmp_path, evaluator, space, cfg, starts)
    warm, searched = finalists(study, cfg)
    assert [t.user_attrs["warm_start"] for t in warm] == ["uniform", "global"]
    assert len(searched) == 3
    keeps = [tuple(sorted(t.user_attrs["keep"].items())) for t in warm + searched]
    assert len(set(keeps)) == len(keeps)
    rest = [
        t.values[0]
        for t in study.trials
        if "warm_start" not in t.user_attrs
        and t not in searched
        and tuple(sorted(t.user_attrs["keep"].items())) not in keeps
    ]
    assert all(v <= min(t.values[0] for t in searched) for v in rest)


@pytest.mark.parametrize("favour", ["searched", "global"])
def test_the_final_evaluator_decides_among_the_finalists(tmp_path, favour: str) -> None:
    evaluator, space, cfg, starts = _setup(trials=8, rescore=2)
    _, study = _run(tmp_path, evaluator, space, cfg, starts, name="probe")
    _, searched = finalists(study, cfg)
    # the final score prefers the *worse* searched finalist, or the global warm start
    target = searched[-1].user_attrs["keep"] if favour == "searched" else starts["global"].keep
    final = _Scripted(evaluator, lambda keep: 0.9 if dict(keep) == dict(target) else 0.5)
    result, _ = _run(tmp_path, evaluator, space, cfg, starts, final=final, name="real")
    assert result.spec.keep == dict(target)
    assert result.selection["final_steps"] == cfg.final_steps
    assert result.selection["noise"] == 0.0
    chosen = result.selection["scores"][str(result.best_trial)]
    assert chosen["first"] == 0.9
    assert (chosen["warm_start"] == "global") == (favour == "global")
    # every finalist scored once, the two contenders once more
    assert final.calls == len(result.selection["scores"]) + 2


def test_finalist_scores_survive_resume(tmp_path) -> None:
    evaluator, space, cfg, starts = _setup(trials=6)
    final = _Scripted(evaluator, lambda keep: sum(keep.values()) / 1000)
    first, _ = _run(tmp_path, evaluator, space, cfg, starts, final=final)
    again = _Scripted(evaluator, lambda keep: 0.0)
    second, _ = _run(tmp_path, evaluator, space, cfg, starts, final=again, resume=True)
    assert again.calls == 0
    assert second.spec.keep == first.spec.keep
    assert second.selection == first.selection


def test_without_final_steps_the_first_score_is_the_trial_value(tmp_path) -> None:
    evaluator, space, cfg, starts = _setup(trials=6, final_steps=0)
    result, _ = _run(tmp_path, evaluator, space, cfg, starts)
    for row in result.selection["scores"].values():
        assert row["first"] == row["trial"]


def test_rescore_zero_takes_the_best_trial(tmp_path) -> None:
    evaluator, space, cfg, starts = _setup(trials=6, rescore=0)
    final = _Scripted(evaluator, lambda keep: 1.0)
    result, study = _run(tmp_path, evaluator, space, cfg, starts, final=final)
    assert final.calls == 0
    assert result.selection == {}
    assert result.best_value == max(t.values[0] for t in study.trials)


@pytest.mark.parametrize(("field", "value"), [("final_steps", -1), ("final_distill", 1.5)])
def test_bad_final_settings_are_refused(field: str, value: float) -> None:
    from iaprune.errors import IAPruneError

    with pytest.raises(IAPruneError, match="final"):
        SearchConfig(**{field: value})
