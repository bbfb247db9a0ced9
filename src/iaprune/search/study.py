"""run_search: the Optuna study over per-group keep-ratios.

What a trial stores and the :class:`~iaprune.search.records.SearchResult` live in
:mod:`iaprune.search.records`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from iaprune.config import ObjectiveConfig, SearchConfig
from iaprune.errors import IAPruneError
from iaprune.objective import score
from iaprune.parallel import refuse_other_run
from iaprune.search.builder import Space, WarmStart
from iaprune.search.choice import Scorer, Selection, choose
from iaprune.search.evaluate import CandidateEvaluator, CandidateResult
from iaprune.search.local import LocalSpace, anchor_on_best, restore_anchor
from iaprune.search.records import (
    ACCURACY_KEY,
    CONSTRAINTS_KEY,
    DUPLICATE_KEY,
    ERROR_KEY,
    KEEP_KEY,
    RATIOS_KEY,
    WARM_KEEP_KEY,
    WARM_RESULT_KEY,
    WARM_START_KEY,
    WARM_STARTED_KEY,
    SearchResult,
    TrialRecord,
    choose_from_front,
    complete_trials,
    meets_budgets,
    pareto_front,
    trial_history,
)
from iaprune.search.samplers import create_sampler, default_startup_trials
from iaprune.search.storage import open_storage
from iaprune.search.uniform import check_reachable, uniform_params
from iaprune.search.workers import (
    DEFINITION_ATTR,
    TRIALS_ATTR,
    announce,
    create_or_join,
    fail_orphans,
    fail_stale,
    mark_ready,
    wait_for_workers,
    wait_ready,
    work,
)

log = logging.getLogger(__name__)

WORKER_START_TIMEOUT = 120.0
"""Seconds the leader of a --workers N search waits for its local workers to join."""


class StudyExistsError(IAPruneError):
    """The study already exists and this process was not asked to resume it."""


def open_study(config: SearchConfig, *, storage: str, resume: bool) -> tuple[optuna.Study, bool]:
    """Create the study, or load it with ``resume``; returns it and whether it is new.

    The storage has heartbeats (``config.heartbeat``), so a trial whose worker died is
    failed and retried (see :mod:`iaprune.search.workers`); with ``resume``, trials an
    older version's crash left RUNNING are marked failed.
    """
    store = open_storage(storage, heartbeat=config.heartbeat, retry=config.storage_retry)
    startup = config.startup_trials
    if startup is None:
        startup = default_startup_trials(config.trials)
    sampler = create_sampler(config.sampler, seed=config.seed, startup_trials=startup)
    directions = [StudyDirection.MAXIMIZE]
    if config.objective.multi_objective:
        directions.append(StudyDirection.MINIMIZE)
    study, created = create_or_join(
        store, config.study_name, directions=directions, sampler=sampler, resume=resume
    )
    if not created and not resume:
        raise StudyExistsError(
            f"study {config.study_name!r} already exists in {store.url}; use --resume"
        )
    if resume:
        fail_stale(study)
        fail_orphans(study)
    return study, created


def join_search(
    evaluator: CandidateEvaluator,
    space: Space,
    config: SearchConfig,
    *,
    storage: str,
    definition: Mapping[str, Any] | None = None,
    timeout: float = 600.0,
) -> int:
    """Run trials of a study another process created, until it has its trials.

    Waits (up to ``timeout`` s) until the creator has set the study up, refuses a study
    whose stored definition differs from ``definition``, and returns how many trials
    this process ran. The final choice is the creator's (:func:`run_search`). The
    sampler is seeded from ``config.seed`` and the process id: workers sharing a seed
    would propose the same candidates.
    """
    store = open_storage(storage, heartbeat=config.heartbeat, retry=config.storage_retry)
    # Each worker's sampler needs its own seed, or all would propose the same candidates.
    seed = (config.seed * 1_000_003 + os.getpid()) % 2**31
    startup = config.startup_trials
    if startup is None:
        startup = default_startup_trials(config.trials)
    sampler = create_sampler(config.sampler, seed=seed, startup_trials=startup)
    deadline = time.monotonic() + timeout
    waiting = False
    while True:
        try:
            study = optuna.load_study(study_name=config.study_name, storage=store, sampler=sampler)
            break
        except KeyError:
            if not waiting:
                waiting = True
                log.info(
                    "waiting up to %g s for study %r to be created in %s",
                    timeout,
                    config.study_name,
                    store.url,
                )
            if time.monotonic() > deadline:
                raise IAPruneError(
                    f"no study {config.study_name!r} in {store.url} after {timeout:g} s"
                ) from None
            time.sleep(1.0)
    wait_ready(study, timeout=max(1.0, deadline - time.monotonic()))
    if definition is not None:
        theirs = study.user_attrs.get(DEFINITION_ATTR, {})
        refuse_other_run(config.study_name, store.url, definition, theirs)
    n_trials = int(study.user_attrs.get(TRIALS_ATTR, config.trials))
    if isinstance(space, LocalSpace):
        restore_anchor(study, space)
    announce(study)
    return work(study, _objective(evaluator, space, config), n_trials)


def run_search(
    evaluator: CandidateEvaluator,
    space: Space,
    config: SearchConfig,
    *,
    storage: str,
    resume: bool = False,
    warm_starts: Mapping[str, WarmStart] | Callable[[], Mapping[str, WarmStart]] | None = None,
    definition: Mapping[str, Any] | None = None,
    final_evaluator: Scorer | None = None,
    checked: Collection[str] = (),
) -> SearchResult:
    """Run (or resume) the search and return the best feasible configuration.

    Finished trials live in ``storage`` (any Optuna storage URL), so an interrupted
    search resumed with ``resume=True`` only runs the trials still missing.
    ``warm_starts`` (``{name: WarmStart}``, see :func:`iaprune.search.builder.warm_starts`)
    are enqueued as the first trials of a new study and evaluated at their exact widths
    (a callable is called only then, so a resumed study does not recompute them).
    The final candidate is chosen among them and the best searched ones by
    ``final_evaluator`` (see :mod:`iaprune.search.choice`; None: the trial scores, with a
    second score by ``evaluator`` for the noise); the result's ``selection`` says how.

    Other processes may run trials of the same study at the same time
    (:func:`join_search`); this one, which created the study (or resumes it), enqueues
    the warm starts once, stores ``definition`` in the study's user attributes, waits
    until the study has ``config.trials`` trials and makes the final choice.
    The result's ``spec`` is complete: kept widths and the kept filter indices of
    every group.

    Every budget the smallest allowed model misses is refused before the first trial,
    except those in ``checked``: budgets the caller has already checked more carefully
    (:func:`iaprune.search.plan.check_budget` times latency budgets A/B, where the
    evaluator's one sequential timing could refuse a budget at the model's floor).
    """
    check_reachable(evaluator, space, config, skip=checked)
    study, _ = open_study(config, storage=storage, resume=resume)
    n_trials = config.trials
    if config.sampler == "uniform":
        n_trials = 1
        if not complete_trials(study):
            study.enqueue_trial(
                uniform_params(evaluator, space, config), user_attrs={WARM_START_KEY: "uniform"}
            )
    elif config.warm_start and not _warm_started(study):
        starts = dict((warm_starts() if callable(warm_starts) else warm_starts) or {})
        results: dict[str, dict[str, Any]] = {}
        if isinstance(space, LocalSpace) and starts:
            results = anchor_on_best(study, space, starts, _warm_record(evaluator, config))
            starts = {
                n: WarmStart(space.params_for_keep(s.keep), s.keep) for n, s in starts.items()
            }
        for name, start in starts.items():
            attrs: dict[str, Any] = {WARM_START_KEY: name, WARM_KEEP_KEY: start.keep}
            if name in results:
                attrs[WARM_RESULT_KEY] = results[name]
            study.enqueue_trial(dict(start.params), user_attrs=attrs)
        study.set_user_attr(WARM_STARTED_KEY, True)
    if isinstance(space, LocalSpace):
        restore_anchor(study, space)
    mark_ready(study, definition or study.user_attrs.get(DEFINITION_ATTR, {}), n_trials)
    if config.workers > 1:
        wait_for_workers(study, config.workers - 1, timeout=WORKER_START_TIMEOUT)
    ran = work(study, _objective(evaluator, space, config), n_trials)
    log.info("search: %d trials ran in this process", ran)
    outcome = _outcome(study, config)
    selection, finalist_seconds = None, 0.0
    if config.rescore and not config.objective.multi_objective and config.sampler != "uniform":
        started = time.perf_counter()
        selection = choose(
            study,
            final_evaluator or evaluator,
            config,
            trial_scores=final_evaluator is None,
            val_size=getattr(evaluator, "val_size", 0),  # duck-typed evaluators may lack it
            time_limit=config.final_time * _trial_seconds(outcome.trials)
            if config.final_time
            else None,
        )
        finalist_seconds = time.perf_counter() - started
        log.info("finalists: chosen in %.1f s (%s)", finalist_seconds, selection.reason)
    return _result(study, evaluator, config, outcome, selection, finalist_seconds)


def _objective(
    evaluator: CandidateEvaluator, space: Space, config: SearchConfig
) -> Callable[[optuna.Trial], float | tuple[float, float]]:
    """The trial function: suggest widths, evaluate, record the scores as user attributes."""
    objective_cfg = config.objective
    budget_keys = sorted(objective_cfg.budgets())

    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        keep = space.suggest(trial)
        if WARM_KEEP_KEY in trial.user_attrs:  # a warm start: the heuristic's exact widths
            keep = {k: int(v) for k, v in trial.user_attrs[WARM_KEEP_KEY].items()}
        twin = _evaluated(trial.study, keep)
        if twin is not None:  # other parameters projected onto widths scored before
            return _reuse(trial, twin, keep, budget_keys)
        record = trial.user_attrs.get(WARM_RESULT_KEY)  # scored before it was enqueued
        if record is None:
            record = _record(evaluator(keep))  # raising fails this trial only (workers.Guarded)
        accuracy, ratios, latency_ms = record["accuracy"], record["ratios"], record["latency_ms"]
        value, constraints = score(accuracy, ratios, latency_ms, objective_cfg)
        for key, excess in zip(budget_keys, constraints, strict=True):
            trial.set_constraint(key, excess)
        TrialRecord(keep, accuracy, ratios, latency_ms, constraints).store(trial)
        log.info(
            "trial %d: val accuracy %.4f, ratios %s",
            trial.number,
            accuracy,
            {k: round(v, 3) for k, v in ratios.items()},
        )
        if objective_cfg.multi_objective:
            return value, pareto_cost(ratios, latency_ms, objective_cfg)
        return value

    return objective


def _record(result: CandidateResult) -> dict[str, Any]:
    """What a trial keeps of an evaluation (JSON-serialisable)."""
    return {
        "accuracy": float(result.accuracy),
        "ratios": {k: float(v) for k, v in result.ratios.items()},
        "latency_ms": result.cost.latency_ms,
    }


def _warm_record(
    evaluator: CandidateEvaluator, config: SearchConfig
) -> Callable[[Mapping[str, int]], dict[str, Any]]:
    """Scores a warm start before the search (:func:`~iaprune.search.local.anchor_on_best`)."""

    def evaluate(keep: Mapping[str, int]) -> dict[str, Any]:
        record = _record(evaluator(keep))
        value, constraints = score(
            record["accuracy"], record["ratios"], record["latency_ms"], config.objective
        )
        return {**record, "value": float(value), "feasible": all(c <= 0 for c in constraints)}

    return evaluate


def _evaluated(study: optuna.Study, keep: Mapping[str, int]) -> FrozenTrial | None:
    """The first complete trial of ``study`` that evaluated exactly the widths ``keep``."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get(KEEP_KEY) == keep:
            return t
    return None


def _reuse(
    trial: optuna.Trial, twin: FrozenTrial, keep: Mapping[str, int], budget_keys: list[str]
) -> float | tuple[float, float]:
    """Record ``twin``'s scores and costs as ``trial``'s (the same widths score the same)."""
    for key, excess in zip(budget_keys, twin.user_attrs.get(CONSTRAINTS_KEY, []), strict=True):
        trial.set_constraint(key, excess)
    replace(TrialRecord.of(twin), keep=dict(keep)).store(trial)
    trial.set_user_attr(DUPLICATE_KEY, twin.number)
    log.info("trial %d: the widths of trial %d, its score reused", trial.number, twin.number)
    values = twin.values
    return (values[0], values[1]) if len(values) > 1 else values[0]


def pareto_cost(
    ratios: dict[str, float], latency_ms: float | None, config: ObjectiveConfig
) -> float:
    """The cost minimised next to accuracy in pareto mode: MACs ratio or latency (ms)."""
    if config.pareto_cost == "latency":
        if latency_ms is None:
            raise IAPruneError("pareto on latency needs a measured or predicted latency")
        return latency_ms
    return ratios["macs"]


def _warm_started(study: optuna.Study) -> bool:
    """Whether the study's warm starts were enqueued (by this or an earlier process)."""
    if study.user_attrs.get(WARM_STARTED_KEY):
        return True
    return any(WARM_START_KEY in t.user_attrs for t in study.get_trials(deepcopy=False))


@dataclass(frozen=True)
class _Outcome:
    """The study's finished trials, failures, history, Pareto front and best feasible trial."""

    trials: list[FrozenTrial]
    failed: list[FrozenTrial]
    history: list[dict[str, Any]]
    front: list[dict[str, Any]]
    best: FrozenTrial


def _outcome(study: optuna.Study, config: SearchConfig) -> _Outcome:
    """The best feasible trial (by value, or the front's choice in pareto mode); raises if none."""
    trials = complete_trials(study)
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    if not trials:
        why = next((t.user_attrs[ERROR_KEY] for t in failed if ERROR_KEY in t.user_attrs), "")
        raise IAPruneError(f"all {len(failed)} trials failed; first error: {why}")
    feasible = [t for t in trials if meets_budgets(t)]
    if not feasible:
        closest = min(trials, key=lambda t: max(t.user_attrs.get(CONSTRAINTS_KEY, [math.inf])))
        raise IAPruneError(
            f"no trial of {len(trials)} met the budget (closest: trial {closest.number}, "
            f"constraint excess {max(closest.user_attrs[CONSTRAINTS_KEY]):.4g}); "
            "run more trials with --resume or relax the budget"
        )
    history = trial_history(study)
    front: list[dict[str, Any]] = []
    if config.objective.multi_objective:
        front = pareto_front(history)
        chosen = choose_from_front(front)["number"]
        best = next(t for t in feasible if t.number == chosen)
    else:
        best = max(feasible, key=lambda t: (t.values[0], -t.number))
    return _Outcome(trials, failed, history, front, best)


def _trial_seconds(trials: Sequence[FrozenTrial]) -> float:
    """The search's own time: the sum of its trials' durations (over every worker)."""
    return sum(
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in trials
        if t.datetime_complete and t.datetime_start
    )


def _result(
    study: optuna.Study,
    evaluator: CandidateEvaluator,
    config: SearchConfig,
    outcome: _Outcome,
    selection: Selection | None,
    finalist_seconds: float,
) -> SearchResult:
    """The search's result: the finalists' choice if one was made, else the best trial.

    Its spec is built once, complete with the kept filter indices of every group.
    """
    chosen = outcome.best
    if selection is not None and selection.chosen is not None:
        chosen = next(t for t in outcome.trials if t.number == selection.chosen)
    seconds = _trial_seconds(outcome.trials)
    return SearchResult(
        spec=evaluator.pruner.spec(dict(chosen.user_attrs[KEEP_KEY])),
        best_trial=chosen.number,
        best_value=float(chosen.values[0]),
        accuracy=float(chosen.user_attrs[ACCURACY_KEY]),
        ratios=dict(chosen.user_attrs[RATIOS_KEY]),
        sampler=config.sampler,
        trials=len(outcome.trials),
        seconds=seconds + finalist_seconds,  # the reported search time includes the finalists
        history=outcome.history,
        pareto=outcome.front,
        selection=selection.to_dict() if selection is not None else {},
        failed=len(outcome.failed),
        failed_numbers=[t.number for t in outcome.failed],
        finalist_seconds=finalist_seconds,
    )
