"""The ``local`` search space: moves around the best warm start, projected on the budget."""

from __future__ import annotations

import random

import optuna
import pytest

from iaprune.config import ObjectiveConfig, SearchConfig
from iaprune.errors import IAPruneError
from iaprune.search import make_space, run_search, warm_starts
from iaprune.search.local import ANCHOR_ATTR, WARM_RESULTS_ATTR, LocalSpace
from tests.search.evaluators import tiny_evaluator

OBJECTIVE = ObjectiveConfig(max_macs=0.5)


def _space(model: str = "test_resnet") -> tuple[LocalSpace, object]:
    evaluator = tiny_evaluator(model, finetune_steps=2)
    space = make_space(
        evaluator.pruner, (1, 8, 8), SearchConfig(objective=OBJECTIVE, space="local")
    )
    assert isinstance(space, LocalSpace)
    return space, evaluator


def test_one_dimension_per_group_and_the_centre_is_the_anchor() -> None:
    space, evaluator = _space()
    groups = evaluator.pruner.groups  # type: ignore[attr-defined]
    assert len(space.clusters) == len(groups)
    anchor = warm_starts(evaluator.pruner, space)["global"].keep  # type: ignore[attr-defined]
    space.set_anchor(anchor)
    assert space.params_for_keep(anchor) == pytest.approx(space.uniform_params())
    assert space.keep_for(space.uniform_params()) == space.projection.project(
        {g.name: anchor[g.name] / g.channels for g in groups}
    )


def test_every_move_lands_on_the_budget() -> None:
    space, _ = _space("test_vgg")
    projection, rng = space.projection, random.Random(0)
    for _ in range(20):
        params = {space.param_name(c): rng.uniform(-1, 1) for c in space.clusters}
        keep = space.keep_for(params)
        macs = projection.values(keep)["macs"]
        assert macs <= 0.5 + 1e-9
        grown = [
            projection.values({**keep, g.name: g.channels})["macs"]
            for g in space.space.groups
            if keep[g.name] < g.channels
        ]
        # on the budget: widening any group that is not full would exceed it
        assert all(m > 0.5 for m in grown) or macs > 0.45


def _run(tmp_path, name: str, trials: int, *, resume: bool = False, calls: list | None = None):
    space, evaluator = _space()
    cfg = SearchConfig(objective=OBJECTIVE, space="local", sampler="gp", trials=trials, seed=3)
    # two warm starts keep the trial count of the resume checks below exact
    starts = {
        n: s
        for n, s in warm_starts(evaluator.pruner, space).items()  # type: ignore[attr-defined]
        if n in ("uniform", "global")
    }

    class Counting:
        pruner = evaluator.pruner  # type: ignore[attr-defined]

        def costs(self, keep):
            return evaluator.costs(keep)  # type: ignore[attr-defined]

        def __call__(self, keep, *, seed=None):
            if calls is not None and seed is None:  # trial scores, not finalists' re-scores
                calls.append(dict(keep))
            return evaluator(keep, seed=seed)  # type: ignore[operator]

    storage = f"sqlite:///{tmp_path / name}.db"
    result = run_search(
        Counting(),  # type: ignore[arg-type]
        space,
        cfg,
        storage=storage,
        resume=resume,
        warm_starts=starts,
    )
    return result, optuna.load_study(study_name=cfg.study_name, storage=storage), starts, space


def test_the_search_centres_on_the_best_warm_start_and_scores_it_once(tmp_path) -> None:
    calls: list = []
    result, study, starts, space = _run(tmp_path, "a", 6, calls=calls)
    warm = study.user_attrs[WARM_RESULTS_ATTR]
    best = max((n for n in warm if warm[n]["feasible"]), key=lambda n: warm[n]["value"])
    assert study.user_attrs[ANCHOR_ATTR]["name"] == best
    assert space.anchor == {
        g.name: starts[best].keep[g.name] / g.channels for g in space.space.groups
    }
    # each warm start's widths were evaluated once (before it was enqueued), not twice
    for start in starts.values():
        assert sum(c == start.keep for c in calls) == 1
    # every trial has the same parameters, so the Gaussian process sees all of them
    names = {frozenset(t.params) for t in study.trials}
    assert names == {frozenset(space.param_name(c) for c in space.clusters)}
    assert all(h["ratios"]["macs"] <= 0.5 for h in result.history)


def test_a_seeded_local_search_is_reproducible_and_resumes_on_its_anchor(tmp_path) -> None:
    first, _, _, _ = _run(tmp_path, "a", 6)
    second, _, _, _ = _run(tmp_path, "b", 6)
    assert [h["keep"] for h in first.history] == [h["keep"] for h in second.history]
    calls: list = []
    resumed, study, _, space = _run(tmp_path, "b", 8, resume=True, calls=calls)
    assert resumed.trials == 8
    assert [h["keep"] for h in resumed.history[:6]] == [h["keep"] for h in second.history]
    assert space.anchor == _run(tmp_path, "c", 1)[3].anchor  # restored, not chosen again
    assert len(calls) == 2  # the two new trials only: no warm start scored again


def test_local_space_needs_a_projectable_budget() -> None:
    evaluator = tiny_evaluator()
    cfg = SearchConfig(objective=ObjectiveConfig(kind="weighted", w_macs=0.5), space="local")
    assert not isinstance(make_space(evaluator.pruner, (1, 8, 8), cfg), LocalSpace)
    with pytest.raises(IAPruneError, match="unknown search space"):
        SearchConfig(space="trust")
