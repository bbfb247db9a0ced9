"""run_search: the Optuna study over per-group keep-ratios."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from iaprune.config import ObjectiveConfig, SearchConfig
from iaprune.errors import IAPruneError, one_line
from iaprune.objective import constraint_values, score
from iaprune.pareto import TrialPoint
from iaprune.pareto import pareto_front as front_of
from iaprune.pruning.spec import PruningSpec
from iaprune.search.builder import Space, WarmStart
from iaprune.search.choice import Scorer, choose, meets_budgets
from iaprune.search.evaluate import CandidateEvaluator, CandidateResult
from iaprune.search.local import LocalSpace, anchor_on_best, restore_anchor
from iaprune.search.projection import AllocationSpace
from iaprune.search.samplers import create_sampler, default_startup_trials
from iaprune.search.space import SearchSpace
from iaprune.search.storage import open_storage
from iaprune.search.workers import (
    DEFINITION_ATTR,
    ERROR_ATTR,
    TRIALS_ATTR,
    announce,
    create_or_join,
    differences,
    fail_orphans,
    fail_stale,
    mark_ready,
    wait_for_workers,
    wait_ready,
    work,
)

log = logging.getLogger(__name__)

WARM_KEEP_ATTR = "warm_keep"
"""User attribute of an enqueued warm start: the widths it is evaluated at."""

DUPLICATE_ATTR = "same_widths_as"
"""User attribute of a trial whose widths an earlier trial evaluated: that trial's number."""

WARM_STARTED_ATTR = "warm_started"
"""Study attribute set once the warm starts are enqueued: a resumed study never repeats them."""

WARM_RESULT_ATTR = "warm_result"
"""Trial user attribute: a warm start's evaluation made before it was enqueued (``local``)."""

WORKER_START_TIMEOUT = 120.0
"""Seconds the leader of a --workers N search waits for its local workers to join."""


@dataclass
class SearchResult:
    """Outcome of a search: the best feasible configuration and every trial."""

    spec: PruningSpec
    best_trial: int
    best_value: float
    accuracy: float
    ratios: dict[str, float]
    sampler: str
    trials: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    pareto: list[dict[str, Any]] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)
    failed: int = 0
    failed_numbers: list[int] = field(default_factory=list)
    latency_fit: dict[str, Any] = field(default_factory=dict)
    finalist_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The ``search`` block of report.json."""
        return {
            "sampler": self.sampler,
            "trials": self.trials,
            "failed_trials": self.failed,
            "best_trial": self.best_trial,
            "best_value": self.best_value,
            "val_accuracy": self.accuracy,
            "seconds": round(self.seconds, 3),
            "finalist_seconds": round(self.finalist_seconds, 3),
            **({"latency_fit": self.latency_fit} if self.latency_fit else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        out = asdict(self)
        out["spec"] = self.spec.to_dict()
        return out


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
        diff = differences(dict(definition), theirs)
        if diff and all(d.startswith("baseline_sha256:") for d in diff):
            raise IAPruneError(
                f"this worker's baseline differs from the one study {config.study_name!r} "
                f"searches ({diff[0]}); give every worker the same --checkpoint"
            )
        if diff:
            raise IAPruneError(
                f"study {config.study_name!r} in {store.url} belongs to another run "
                f"({'; '.join(diff)}); choose another --study-name"
            )
    n_trials = int(study.user_attrs.get(TRIALS_ATTR, config.trials))
    if isinstance(space, LocalSpace):
        restore_anchor(study, space)
    announce(study)
    return work(study, _objective(evaluator, space, config), n_trials)


def check_reachable(evaluator: CandidateEvaluator, space: Space, config: SearchConfig) -> None:
    """Raise a one-line error when even the smallest allowed model misses a budget."""
    budgets = config.objective.budgets()
    if not budgets:
        return
    widths = _widths(space)
    try:
        cost, ratios = evaluator.costs(space.smallest())
    except IAPruneError:
        raise
    except Exception as exc:  # user models may refuse narrow widths in any way
        raise IAPruneError(
            f"the model fails at the smallest allowed widths (min ratio {widths.min_ratio:g}, "
            f"min keep {widths.min_keep}): {one_line(exc, 200)}; raise --min-ratio or --min-keep"
        ) from exc
    values = constraint_values(ratios, cost.latency_ms, budgets)
    for (key, bound), value in zip(sorted(budgets.items()), values, strict=True):
        if value > 0:
            reached = cost.latency_ms if key == "latency_ms" else ratios[key]
            unit = " ms" if key == "latency_ms" else " of the original"
            raise IAPruneError(
                f"budget {key} <= {bound:g}{unit} is unreachable: the smallest allowed model "
                f"(min ratio {widths.min_ratio:g}, min keep {widths.min_keep}, round to "
                f"{widths.round_to}) reaches "
                f"{reached:.4g}{unit}"
            )


def uniform_ratio(evaluator: CandidateEvaluator, space: SearchSpace, config: SearchConfig) -> float:
    """Largest single keep-ratio meeting every budget, by bisection on costs alone."""
    budgets = config.objective.budgets()
    if not budgets:
        raise IAPruneError("the uniform baseline needs a budget (e.g. --max-macs 0.5)")

    def feasible(ratio: float) -> bool:
        cost, ratios = evaluator.costs(space.uniform(ratio))
        return max(constraint_values(ratios, cost.latency_ms, budgets)) <= 0

    lo, hi = space.min_ratio, 1.0
    if feasible(hi):
        return hi
    for _ in range(12):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if feasible(mid) else (lo, mid)
    return lo


def uniform_keep(
    evaluator: CandidateEvaluator, space: SearchSpace, config: SearchConfig
) -> dict[str, int]:
    """The uniform allocation: one keep-ratio for every group, the largest meeting the budgets.

    Raises:
        IAPruneError: no budget, or even the smallest allowed model misses one.
    """
    check_reachable(evaluator, space, config)
    return space.uniform(uniform_ratio(evaluator, space, config))


def _uniform_params(
    evaluator: CandidateEvaluator, space: Space, config: SearchConfig
) -> dict[str, float]:
    if isinstance(space, AllocationSpace):
        return space.uniform_params()
    return space.params_for(uniform_ratio(evaluator, space, config))


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
    """
    check_reachable(evaluator, space, config)
    study, _ = open_study(config, storage=storage, resume=resume)
    n_trials = config.trials
    if config.sampler == "uniform":
        n_trials = 1
        if not _complete(study):
            study.enqueue_trial(
                _uniform_params(evaluator, space, config), user_attrs={"warm_start": "uniform"}
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
            attrs: dict[str, Any] = {"warm_start": name, WARM_KEEP_ATTR: start.keep}
            if name in results:
                attrs[WARM_RESULT_ATTR] = results[name]
            study.enqueue_trial(dict(start.params), user_attrs=attrs)
        study.set_user_attr(WARM_STARTED_ATTR, True)
    if isinstance(space, LocalSpace):
        restore_anchor(study, space)
    mark_ready(study, definition or study.user_attrs.get(DEFINITION_ATTR, {}), n_trials)
    if config.workers > 1:
        wait_for_workers(study, config.workers - 1, timeout=WORKER_START_TIMEOUT)
    ran = work(study, _objective(evaluator, space, config), n_trials)
    log.info("search: %d trials ran in this process", ran)
    result = _result(study, space, config)
    if config.rescore and not config.objective.multi_objective and config.sampler != "uniform":
        scorer = final_evaluator or evaluator
        started = time.perf_counter()
        selection = choose(
            study,
            scorer,
            config,
            trial_scores=final_evaluator is None,
            val_size=getattr(evaluator, "val_size", 0),  # duck-typed evaluators may lack it
            time_limit=config.final_time * result.seconds if config.final_time else None,
        )
        result.finalist_seconds = time.perf_counter() - started
        log.info("finalists: chosen in %.1f s (%s)", result.finalist_seconds, selection["reason"])
        result.seconds += result.finalist_seconds  # the reported search time includes them
        _apply_choice(result, study, selection)
    result.spec = evaluator.pruner.spec(result.spec.keep)  # with the kept filter indices
    return result


def _objective(
    evaluator: CandidateEvaluator, space: Space, config: SearchConfig
) -> Callable[[optuna.Trial], float | tuple[float, float]]:
    """The trial function: suggest widths, evaluate, record the scores as user attributes."""
    objective_cfg = config.objective
    budget_keys = sorted(objective_cfg.budgets())

    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        keep = space.suggest(trial)
        if WARM_KEEP_ATTR in trial.user_attrs:  # a warm start: the heuristic's exact widths
            keep = {k: int(v) for k, v in trial.user_attrs[WARM_KEEP_ATTR].items()}
        twin = _evaluated(trial.study, keep)
        if twin is not None:  # other parameters projected onto widths scored before
            return _reuse(trial, twin, keep, budget_keys)
        record = trial.user_attrs.get(WARM_RESULT_ATTR)  # scored before it was enqueued
        if record is None:
            record = _record(evaluator(keep))  # raising fails this trial only (workers.Guarded)
        accuracy, ratios, latency_ms = record["accuracy"], record["ratios"], record["latency_ms"]
        value, constraints = score(accuracy, ratios, latency_ms, objective_cfg)
        trial.set_user_attr("constraints", constraints)
        for key, excess in zip(budget_keys, constraints, strict=True):
            trial.set_constraint(key, excess)
        trial.set_user_attr("accuracy", accuracy)
        trial.set_user_attr("ratios", ratios)
        trial.set_user_attr("latency_ms", latency_ms)
        trial.set_user_attr("keep", keep)
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
        if t.user_attrs.get("keep") == keep:
            return t
    return None


def _reuse(
    trial: optuna.Trial, twin: FrozenTrial, keep: Mapping[str, int], budget_keys: list[str]
) -> float | tuple[float, float]:
    """Record ``twin``'s scores and costs as ``trial``'s (the same widths score the same)."""
    for key in ("constraints", "accuracy", "ratios", "latency_ms"):
        trial.set_user_attr(key, twin.user_attrs.get(key))
    for key, excess in zip(budget_keys, twin.user_attrs.get("constraints", []), strict=True):
        trial.set_constraint(key, excess)
    trial.set_user_attr("keep", dict(keep))
    trial.set_user_attr(DUPLICATE_ATTR, twin.number)
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


def pareto_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Feasible history rows not dominated in (accuracy up, ``cost`` down), by increasing cost."""
    by_number = {r["number"]: r for r in rows}
    points = [TrialPoint(r["number"], r["accuracy"], r["cost"], r["feasible"]) for r in rows]
    return [by_number[p.number] for p in front_of(points)]


def choose_from_front(front: list[dict[str, Any]], tolerance: float = 0.01) -> dict[str, Any]:
    """The cheapest Pareto point within ``tolerance`` of the front's best accuracy."""
    best = max(r["accuracy"] for r in front)
    return min((r for r in front if r["accuracy"] >= best - tolerance), key=lambda r: r["cost"])


def _warm_started(study: optuna.Study) -> bool:
    """Whether the study's warm starts were enqueued (by this or an earlier process)."""
    if study.user_attrs.get(WARM_STARTED_ATTR):
        return True
    return any("warm_start" in t.user_attrs for t in study.get_trials(deepcopy=False))


def _widths(space: Space) -> SearchSpace:
    return space.space if isinstance(space, AllocationSpace) else space


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def trial_history(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per finished trial, in order (``cost`` only in pareto mode)."""
    return [
        {
            "number": t.number,
            "value": t.values[0],
            **({"cost": t.values[1]} if len(t.values) > 1 else {}),
            "accuracy": t.user_attrs.get("accuracy"),
            "ratios": t.user_attrs.get("ratios", {}),
            "latency_ms": t.user_attrs.get("latency_ms"),
            "feasible": meets_budgets(t),
            "keep": t.user_attrs.get("keep", {}),
            "warm_start": t.user_attrs.get("warm_start"),
        }
        for t in _complete(study)
    ]


def _apply_choice(result: SearchResult, study: optuna.Study, selection: dict[str, Any]) -> None:
    """Make the finalist ``selection`` (see :func:`iaprune.search.choice.choose`) the result."""
    result.selection = selection
    if selection["chosen"] is None:
        return
    chosen = next(t for t in _complete(study) if t.number == selection["chosen"])
    result.best_trial = chosen.number
    result.best_value = float(chosen.values[0])
    result.accuracy = float(chosen.user_attrs["accuracy"])
    result.ratios = dict(chosen.user_attrs["ratios"])
    result.spec = PruningSpec(keep=dict(chosen.user_attrs["keep"]), original=result.spec.original)


def _result(study: optuna.Study, space: Space, config: SearchConfig) -> SearchResult:
    trials = _complete(study)
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    if not trials:
        why = next((t.user_attrs[ERROR_ATTR] for t in failed if ERROR_ATTR in t.user_attrs), "")
        raise IAPruneError(f"all {len(failed)} trials failed; first error: {why}")
    feasible = [t for t in trials if meets_budgets(t)]
    if not feasible:
        closest = min(trials, key=lambda t: max(t.user_attrs.get("constraints", [math.inf])))
        raise IAPruneError(
            f"no trial of {len(trials)} met the budget (closest: trial {closest.number}, "
            f"constraint excess {max(closest.user_attrs['constraints']):.4g}); "
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
    seconds = sum(
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in trials
        if t.datetime_complete and t.datetime_start
    )
    return SearchResult(
        spec=PruningSpec(
            keep=dict(best.user_attrs["keep"]),
            original={g.name: g.channels for g in _widths(space).groups},
        ),
        best_trial=best.number,
        best_value=float(best.values[0]),
        accuracy=float(best.user_attrs["accuracy"]),
        ratios=dict(best.user_attrs["ratios"]),
        sampler=config.sampler,
        trials=len(trials),
        seconds=seconds,
        history=history,
        pareto=front,
        failed=len(failed),
        failed_numbers=[t.number for t in failed],
    )
