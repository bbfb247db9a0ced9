"""The final choice: exact warm starts, finalists re-scored by the final evaluator, resume."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import replace

import optuna
import pytest
import torch
from optuna.trial import TrialState

from iaprune.config import ObjectiveConfig, SearchConfig
from iaprune.search import (
    AllocationSpace,
    CandidateEvaluator,
    CandidateResult,
    make_space,
    run_search,
    warm_starts,
)
from iaprune.search.choice import LazyScorer, finalists
from iaprune.search.workers import best_so_far
from tests.search.evaluators import tiny_evaluator


class _Scripted:
    """A final evaluator whose score is ``rule(keep)`` (real costs); counts its calls."""

    def __init__(self, inner: CandidateEvaluator, rule: Callable[[Mapping[str, int]], float]):
        self.inner, self.rule, self.calls = inner, rule, 0
        self.pruner = inner.pruner
        self.seeds: list[int | None] = []

    def __call__(self, keep: Mapping[str, int], *, seed: int | None = None) -> CandidateResult:
        self.calls += 1
        self.seeds.append(seed)
        real = self.inner(keep)
        return CandidateResult(self.rule(keep), real.cost, real.ratios)


def _setup(trials: int = 8, **kw):
    kw.setdefault("final_time", 0.0)  # no time limit: deterministic finalists
    evaluator = tiny_evaluator()
    cfg = SearchConfig(
        objective=ObjectiveConfig(max_macs=0.5), sampler="random", trials=trials, seed=3, **kw
    )
    space = make_space(evaluator.pruner, (1, 8, 8), cfg)
    assert isinstance(space, AllocationSpace)
    # the finalist mechanism, not the heuristics, is under test here: two warm starts
    starts = warm_starts(evaluator.pruner, space)
    return evaluator, space, cfg, {n: starts[n] for n in ("uniform", "global")}


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


def test_a_lead_within_the_validation_sampling_error_keeps_the_heuristic(tmp_path) -> None:
    evaluator, space, cfg, starts = _setup(trials=8, rescore=2)
    _, study = _run(tmp_path, evaluator, space, cfg, starts, name="probe")
    _, searched = finalists(study, cfg)
    target = dict(searched[0].user_attrs["keep"])
    # a deterministic score: no re-scoring noise; the searched lead is 0.05 on 16 images
    final = _Scripted(evaluator, lambda keep: 0.55 if dict(keep) == target else 0.5)
    result, _ = _run(tmp_path, evaluator, space, cfg, starts, final=final, name="real")
    selection = result.selection
    assert selection["noise"] == 0.0
    assert selection["margin"] == pytest.approx(0.125)  # sqrt(0.5 * 0.5 / 16)
    assert result.spec.keep != target
    assert selection["scores"][str(result.best_trial)]["warm_start"] is not None
    assert "sampling error 0.1250" in selection["reason"]


def test_finalist_scores_survive_resume(tmp_path) -> None:
    evaluator, space, cfg, starts = _setup(trials=6)
    final = _Scripted(evaluator, lambda keep: sum(keep.values()) / 1000)
    first, _ = _run(tmp_path, evaluator, space, cfg, starts, final=final)
    again = _Scripted(evaluator, lambda keep: 0.0)
    second, _ = _run(tmp_path, evaluator, space, cfg, starts, final=again, resume=True)
    assert again.calls == 0
    assert second.spec.keep == first.spec.keep
    assert second.selection == first.selection


@pytest.mark.parametrize("final_steps", [0, 100])
def test_trial_scores_serve_as_first_scores(tmp_path, final_steps: int) -> None:
    """With --final-steps 0, or no final evaluator, finalists are not scored again first."""
    evaluator, space, cfg, starts = _setup(trials=8, final_steps=final_steps)
    probe = _Scripted(evaluator, lambda keep: 0.5)
    final = probe if final_steps == 0 else None  # None: the trial evaluator scores
    result, _ = _run(tmp_path, evaluator, space, cfg, starts, final=final)
    selection = result.selection
    assert selection["final_steps"] == cfg.finetune_steps
    for row in selection["scores"].values():
        assert row["first"] == row["trial"]
    assert sum(row["second"] is not None for row in selection["scores"].values()) == 2
    if final is not None:  # only the noise-measuring scores ran, with the other seed
        assert probe.seeds == [cfg.seed + 1, cfg.seed + 1]


def test_a_single_contender_is_not_scored_twice(tmp_path) -> None:
    evaluator, space, cfg, starts = _setup(trials=2)  # only the two warm starts
    final = _Scripted(evaluator, lambda keep: sum(keep.values()) / 1000)
    result, _ = _run(tmp_path, evaluator, space, cfg, starts, final=final)
    assert final.calls == 2
    assert result.selection["noise"] is None
    assert result.selection["reason"] == "best finalist score"
    assert result.spec.keep == max(
        (s.keep for s in starts.values()), key=lambda keep: sum(keep.values())
    )


def test_one_finalist_keeps_the_best_trial_and_says_why(tmp_path) -> None:
    evaluator, space, cfg, starts = _setup(trials=1)
    final = _Scripted(evaluator, lambda keep: 1.0)
    result, _ = _run(tmp_path, evaluator, space, cfg, {"uniform": starts["uniform"]}, final=final)
    assert final.calls == 0
    assert result.selection["chosen"] is None
    assert "1 finalist" in result.selection["reason"]
    assert result.spec.keep == starts["uniform"].keep


def test_lazy_scorer_builds_once_on_first_use() -> None:
    evaluator = tiny_evaluator()
    probe = _Scripted(evaluator, lambda keep: 0.25)
    built: list[int] = []

    def make() -> _Scripted:
        built.append(1)
        return probe

    lazy = LazyScorer(make)
    assert built == []
    keep = {g.name: g.channels for g in evaluator.pruner.groups}
    assert lazy(keep).accuracy == lazy(keep, seed=7).accuracy == 0.25
    assert built == [1]
    assert probe.seeds == [None, 7]


def test_a_variant_shares_data_and_baseline_but_not_the_recovery() -> None:
    evaluator = tiny_evaluator()
    batches = evaluator.calibration
    variant = evaluator.variant(finetune_steps=3, distill=1.0, train_batches=batches)
    assert (variant.finetune_steps, variant.distill) == (3, 1.0)
    assert (evaluator.finetune_steps, evaluator.distill, evaluator.train_batches) == (0, 0.0, [])
    assert variant.val_batches is evaluator.val_batches
    assert variant.baseline is evaluator.baseline
    keep = {g.name: max(1, g.channels // 2) for g in evaluator.pruner.groups}
    before = [p.detach().clone() for p in variant.pruner.prune(keep).parameters()]
    variant.continued(keep, 3)  # the variant's recovery trains
    (progress,) = variant._progress.values()  # noqa: SLF001
    trained = progress.model
    assert any(not torch.equal(a, b) for a, b in zip(before, trained.parameters(), strict=True))
    assert len(variant._teacher_logits()) == len(batches)  # noqa: SLF001  its own teacher
    assert evaluator._teacher is None  # noqa: SLF001


def test_rescore_zero_takes_the_best_trial(tmp_path) -> None:
    evaluator, space, cfg, starts = _setup(trials=6, rescore=0)
    final = _Scripted(evaluator, lambda keep: 1.0)
    result, study = _run(tmp_path, evaluator, space, cfg, starts, final=final)
    assert final.calls == 0
    assert result.selection == {}
    assert result.best_value == max(t.values[0] for t in study.trials)


@pytest.mark.parametrize(
    ("field", "value"),
    [("final_steps", -1), ("final_distill", 1.5), ("final_time", -1.0), ("final_time", math.inf)],
)
def test_bad_final_settings_are_refused(field: str, value: float) -> None:
    from iaprune.errors import IAPruneError

    with pytest.raises(IAPruneError, match="final"):
        SearchConfig(**{field: value})


def test_the_session_builds_the_final_evaluator_only_when_it_differs(tmp_path) -> None:
    from dataclasses import replace

    from iaprune import RunConfig, Session

    config = RunConfig(model="test_vgg", width_mult=1.0)
    config = replace(config, search=replace(config.search, round_to=1))
    session = Session.create(tmp_path / "run", config)
    trial = tiny_evaluator()
    lazy = session.final_evaluator(trial)
    assert isinstance(lazy, LazyScorer)
    final = lazy.build()
    assert isinstance(final, CandidateEvaluator)
    steps, distill = config.search.final_steps, config.search.final_distill
    assert (final.finetune_steps, final.distill) == (steps, distill) == (100, 1.0)
    assert final.val_batches is trial.val_batches and final.train_batches
    same = {"final_steps": 30, "final_distill": 0.5, "finetune_steps": 30, "distill": 0.5}
    for search in ({"final_steps": 0}, {"rescore": 0}, same):
        other = Session(session.run, replace(config, search=replace(config.search, **search)))
        assert other.final_evaluator(trial) is None


def test_finalist_stage_is_logged_and_counted_in_the_search_time(tmp_path, caplog) -> None:
    evaluator, space, cfg, starts = _setup(trials=6)
    final = _Scripted(evaluator, lambda keep: sum(keep.values()) / 1000)
    with caplog.at_level(logging.INFO, logger="iaprune"):
        result, study = _run(tmp_path, evaluator, space, cfg, starts, final=final)
    text = caplog.text
    assert "finalists: " in text and "candidates" in text
    scored = [r for r in caplog.records if r.getMessage().startswith("finalist trial")]
    assert len(scored) == final.calls  # one line per finalist score
    assert "finalists: chosen in" in text
    trials = sum(
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in study.trials
        if t.datetime_complete and t.datetime_start
    )
    assert result.finalist_seconds > 0
    assert result.seconds == pytest.approx(trials + result.finalist_seconds)
    assert result.summary()["finalist_seconds"] == round(result.finalist_seconds, 3)


def test_the_search_bar_shows_the_best_trial_so_far() -> None:
    study = optuna.create_study(direction="maximize")
    assert best_so_far(study.trials) == ""
    for value in (0.3, 0.7, 0.5):
        study.add_trial(optuna.trial.create_trial(value=value))
    assert best_so_far(study.get_trials()) == "best 0.7000 (trial 1)"


class _Counting:
    """The tiny evaluator, counting the widths it is asked to score."""

    def __init__(self, inner: CandidateEvaluator) -> None:
        self.inner, self.pruner, self.keeps = inner, inner.pruner, []

    def __call__(self, keep: Mapping[str, int], *, seed: int | None = None) -> CandidateResult:
        self.keeps.append(dict(keep))
        return self.inner(keep, seed=seed)

    def costs(self, keep):
        return self.inner.costs(keep)


def test_widths_scored_before_are_not_scored_again(tmp_path) -> None:
    evaluator, space, cfg, starts = _setup(trials=6, rescore=0)
    starts = {**starts, "again": starts["uniform"]}  # parameters that give the same widths
    counting = _Counting(evaluator)
    storage = f"sqlite:///{tmp_path / 'dup'}.db"
    run_search(counting, space, cfg, storage=storage, warm_starts=starts)  # type: ignore[arg-type]
    study = optuna.load_study(study_name=cfg.study_name, storage=storage)
    trials = [t for t in study.trials if t.state == TrialState.COMPLETE]
    twins = [t for t in trials if "same_widths_as" in t.user_attrs]
    assert [t.user_attrs["warm_start"] for t in twins[:1]] == ["again"]
    assert len(counting.keeps) == len(trials) - len(twins)
    assert len({tuple(sorted(k.items())) for k in counting.keeps}) == len(counting.keeps)
    for t in twins:
        first = study.trials[t.user_attrs["same_widths_as"]]
        assert t.user_attrs["keep"] == first.user_attrs["keep"]
        assert t.values == first.values and t.user_attrs["ratios"] == first.user_attrs["ratios"]


class _Clock:
    """``time.perf_counter`` that advances ``step`` seconds per finalist score."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += self.step


@pytest.mark.parametrize(("limit", "rescored"), [(5.0, 0), (25.0, 2), (None, 3)])
def test_searched_finalists_stop_at_the_time_limit_warm_starts_always_run(
    tmp_path, monkeypatch: pytest.MonkeyPatch, limit: float | None, rescored: int
) -> None:
    from iaprune.search import choice

    evaluator, space, cfg, starts = _setup(trials=10, rescore=3)
    _, study = _run(tmp_path, evaluator, space, cfg, starts)
    warm, searched = finalists(study, cfg)
    assert (len(warm), len(searched)) == (2, 3)
    clock = _Clock(10.0)  # every score takes 10 s
    monkeypatch.setattr(choice.time, "perf_counter", clock)

    def scorer(keep, *, seed=None):  # type: ignore[no-untyped-def]
        clock.tick()
        return _Scripted(evaluator, lambda k: sum(k.values()) / 1000)(keep, seed=seed)

    selection = choice.choose(study, scorer, cfg, time_limit=limit)
    # 2 warm starts take 20 s, not counted; a searched one is scored while its own time so
    # far plus the mean time of a score (first: the warm starts' 10 s) stays within limit
    assert selection.not_rescored == 3 - rescored
    scored = selection.scores
    assert {s["warm_start"] for s in scored.values()} >= {"uniform", "global"}
    assert len(scored) == 2 + rescored


class _Rungs(_Scripted):
    """A scripted final evaluator with continued recoveries: ``rule(keep, steps)``."""

    def __init__(
        self,
        inner: CandidateEvaluator,
        rule: Callable[[Mapping[str, int], int], float],
        *,
        other_seed: float = 0.0,
        fails_at: int | None = None,
    ):
        super().__init__(inner, lambda keep: rule(keep, 2))
        self.steps_rule = rule
        self.other_seed = other_seed  # what a score with another seed adds
        self.fails_at = fails_at  # continued recoveries to these steps raise
        self.continued_calls: list[tuple[tuple[tuple[str, int], ...], int]] = []
        self.forgotten: list[Mapping[str, int] | None] = []
        self.stateless_steps: list[int | None] = []

    def __call__(
        self, keep: Mapping[str, int], *, seed: int | None = None, steps: int | None = None
    ) -> CandidateResult:
        self.calls += 1
        self.seeds.append(seed)
        self.stateless_steps.append(steps)
        real = self.inner(keep)
        value = self.steps_rule(keep, steps or 2) + self.other_seed
        return CandidateResult(value, real.cost, real.ratios)

    def continued(self, keep: Mapping[str, int], steps: int) -> CandidateResult:
        self.continued_calls.append((tuple(sorted(keep.items())), steps))
        if steps == self.fails_at:
            raise RuntimeError("diverged")
        real = self.inner(keep)
        return CandidateResult(self.steps_rule(keep, steps), real.cost, real.ratios)

    def forget(self, keep: Mapping[str, int] | None = None) -> None:
        self.forgotten.append(keep)


def test_successive_halving_continues_the_best_and_chooses_at_the_last_rung(tmp_path) -> None:
    evaluator, space, cfg, starts = _setup(trials=10, rescore=3, final_steps=2)
    cfg = replace(cfg, final_rungs="4:3,8:2")
    _, study = _run(tmp_path, evaluator, space, cfg, starts, name="probe")
    warm, searched = finalists(study, cfg)
    assert (len(warm), len(searched)) == (2, 3)
    # the order of the first scores: warm, searched, warm, searched, searched
    order = [
        tuple(sorted(t.user_attrs["keep"].items()))
        for t in (warm[0], searched[0], warm[1], searched[1], searched[2])
    ]

    def rule(keep: Mapping[str, int], steps: int) -> float:
        rank = order.index(tuple(sorted(keep.items())))
        return float(-rank if steps < 8 else rank)  # at 8 steps the survivors' order flips

    final = _Rungs(evaluator, rule)
    result, _ = _run(tmp_path, evaluator, space, cfg, starts, final=final, name="real")
    selection = result.selection
    assert tuple(sorted(result.spec.keep.items())) == order[1]  # the searched one, at 8 steps
    assert selection["final_steps"] == 8
    assert [s for _, s in final.continued_calls] == [2] * 5 + [4] * 3 + [8] * 2
    assert {k for k, s in final.continued_calls if s == 4} == set(order[:3])
    assert {k for k, s in final.continued_calls if s == 8} == set(order[:2])
    reached = {n: row.get("rungs", {}) for n, row in selection["scores"].items()}
    assert sorted(len(r) for r in reached.values()) == [0, 0, 1, 2, 2]
    assert len(final.forgotten) == 2 + 1 + 1 and final.forgotten[-1] is None  # dropped, all


def test_the_last_rungs_contenders_get_their_noise_score_at_its_steps(tmp_path) -> None:
    evaluator, space, cfg, starts = _setup(trials=8, rescore=2, final_steps=2)
    cfg = replace(cfg, final_rungs="6:2")
    _, study = _run(tmp_path, evaluator, space, cfg, starts, name="probe")
    warm, searched = finalists(study, cfg)
    target = dict(searched[0].user_attrs["keep"])
    warm_keeps = [dict(t.user_attrs["keep"]) for t in warm]
    # the best searched finalist and a warm start survive; the searched one leads
    final = _Rungs(
        evaluator,
        lambda keep, steps: (
            0.9 if dict(keep) == target else 0.7 if dict(keep) in warm_keeps else 0.5
        ),
    )
    result, _ = _run(tmp_path, evaluator, space, cfg, starts, final=final, name="real")
    assert result.selection["final_steps"] == 6
    assert final.seeds == [cfg.seed + 1, cfg.seed + 1]  # the noise scores, with the other seed
    assert final.stateless_steps == [6, 6]  # at the last rung's steps
    assert result.spec.keep == target


def _rung_setup(tmp_path, rungs: str, **kw):
    evaluator, space, cfg, starts = _setup(trials=8, rescore=2, final_steps=2, **kw)
    cfg = replace(cfg, final_rungs=rungs)
    _, study = _run(tmp_path, evaluator, space, cfg, starts, name="probe")
    warm, searched = finalists(study, cfg)
    return evaluator, space, cfg, starts, warm, searched


def test_the_noise_compares_two_scores_at_the_last_rungs_steps(tmp_path) -> None:
    evaluator, space, cfg, starts, warm, searched = _rung_setup(tmp_path, "6:2")
    target = dict(searched[0].user_attrs["keep"])
    warm_keeps = [dict(t.user_attrs["keep"]) for t in warm]

    def rule(keep: Mapping[str, int], steps: int) -> float:  # every score grows with steps
        base = 0.6 if dict(keep) == target else 0.5 if dict(keep) in warm_keeps else 0.1
        return base + steps / 100

    final = _Rungs(evaluator, rule, other_seed=0.01)
    result, _ = _run(tmp_path, evaluator, space, cfg, starts, final=final, name="real")
    # 0.01 between the two seeds at 6 steps; the first scores (2 steps) would say 0.05
    assert result.selection["noise"] == pytest.approx(0.01)


def test_every_rung_keeps_a_warm_start_to_compare_with(tmp_path) -> None:
    evaluator, space, cfg, starts, warm, searched = _rung_setup(tmp_path, "6:2")
    searched_keeps = [dict(t.user_attrs["keep"]) for t in searched]
    warm_keeps = [dict(t.user_attrs["keep"]) for t in warm]
    # both searched finalists lead every warm start: the best warm start still goes on
    final = _Rungs(
        evaluator,
        lambda keep, steps: (
            0.9 - 0.1 * searched_keeps.index(dict(keep))
            if dict(keep) in searched_keeps
            else 0.5 - 0.1 * warm_keeps.index(dict(keep))
        ),
    )
    result, _ = _run(tmp_path, evaluator, space, cfg, starts, final=final, name="real")
    at_six = [dict(k) for k, steps in final.continued_calls if steps == 6]
    assert at_six == [searched_keeps[0], warm_keeps[0]]
    assert result.selection["margin"] is not None  # the margin rule compared the two


def test_a_rung_that_fails_leaves_the_decision_to_the_last_scored_rung(tmp_path) -> None:
    evaluator, space, cfg, starts, warm, searched = _rung_setup(tmp_path, "4:2,6:2")
    final = _Rungs(evaluator, lambda keep, steps: sum(keep.values()) / 1000 + steps, fails_at=6)
    result, _ = _run(tmp_path, evaluator, space, cfg, starts, final=final, name="real")
    selection = result.selection
    assert selection["final_steps"] == 4
    assert final.stateless_steps == [4, 4]  # the noise scores at the steps that decided
    assert all(set(row.get("rungs", {})) <= {"4"} for row in selection["scores"].values())
    assert result.spec.keep == max(
        (dict(t.user_attrs["keep"]) for t in warm + searched), key=lambda k: sum(k.values())
    )


def test_rung_scores_survive_resume(tmp_path) -> None:
    evaluator, space, cfg, starts, _, _ = _rung_setup(tmp_path, "4:2")
    final = _Rungs(evaluator, lambda keep, steps: sum(keep.values()) / 1000 + steps)
    first, _ = _run(tmp_path, evaluator, space, cfg, starts, final=final, name="real")
    again = _Rungs(evaluator, lambda keep, steps: 0.0)
    second, _ = _run(tmp_path, evaluator, space, cfg, starts, final=again, name="real", resume=True)
    assert again.calls == 0 and again.continued_calls == []
    assert second.selection == first.selection


def test_a_config_file_without_rungs_reads_as_none() -> None:
    from iaprune import RunConfig

    data = RunConfig().to_dict()
    del data["search"]["final_rungs"]
    assert RunConfig.from_dict(data).search.rungs() == ()


@pytest.mark.parametrize(
    ("rungs", "steps", "message"),
    [
        ("200", 100, "STEPS:SURVIVORS"),
        ("50:2", 100, "more steps"),
        ("200:1", 100, "at least two survivors"),
        ("²00:2", 100, "STEPS:SURVIVORS"),
        ("200:2,400:3", 100, "more finalists"),
        ("200:2", 0, "--final-steps"),
    ],
)
def test_bad_rungs_are_refused_in_one_line(rungs: str, steps: int, message: str) -> None:
    from iaprune.errors import IAPruneError

    with pytest.raises(IAPruneError, match=message):
        SearchConfig(final_rungs=rungs, final_steps=steps)
    assert SearchConfig(final_rungs=" 200:4, 400:2 ").rungs() == ((200, 4), (400, 2))


def test_the_rungs_final_evaluator_continues_real_recoveries(tmp_path) -> None:
    from iaprune.search.plan import final_evaluator

    evaluator, space, cfg, starts = _setup(trials=6, rescore=1, final_steps=1)
    cfg = replace(cfg, final_rungs="3:2", final_distill=0.5)
    trial = tiny_evaluator(finetune_steps=1)
    data = _Data(trial)
    lazy = final_evaluator(trial, data, cfg)  # type: ignore[arg-type]
    assert isinstance(lazy, LazyScorer)
    result, _ = _run(tmp_path, evaluator, space, cfg, starts, final=lazy, name="real")
    fresh = final_evaluator(trial, data, cfg).build()  # type: ignore[arg-type,union-attr]
    assert len(fresh.train_batches) == 3
    for n, row in result.selection["scores"].items():
        if "rungs" in row:  # the continued score equals one recovery of all 3 steps
            keep = next(t for t in _trials(tmp_path, cfg) if str(t.number) == n).user_attrs["keep"]
            assert row["rungs"]["3"] == fresh(keep, steps=3).accuracy
    assert not lazy.build()._progress  # released


class _Data:
    """The scoring data :func:`final_evaluator` asks for: the trial's own batches."""

    def __init__(self, trial: CandidateEvaluator) -> None:
        self.trial = trial

    def train_batches(self, steps: int) -> list:
        return [self.trial.calibration[i % 2] for i in range(steps)]


def _trials(tmp_path, cfg):
    storage = f"sqlite:///{tmp_path / 'real'}.db"
    return optuna.load_study(study_name=cfg.study_name, storage=storage).trials
