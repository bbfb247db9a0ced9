"""run_search: the Optuna study over per-group keep-ratios."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState

from iaprune.config import ObjectiveConfig, SearchConfig
from iaprune.errors import IAPruneError, one_line
from iaprune.objective import constraint_values, score
from iaprune.pareto import TrialPoint
from iaprune.pareto import pareto_front as front_of
from iaprune.progress import progress
from iaprune.pruning.spec import PruningSpec
from iaprune.search.builder import Space
from iaprune.search.evaluate import CandidateEvaluator
from iaprune.search.projection import AllocationSpace
from iaprune.search.samplers import create_sampler, default_startup_trials
from iaprune.search.space import SearchSpace

log = logging.getLogger(__name__)


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
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        out = asdict(self)
        out["spec"] = self.spec.to_dict()
        return out


def open_study(config: SearchConfig, *, storage: str, resume: bool) -> optuna.Study:
    """Create the study, or load it with ``resume``; trials a crash left RUNNING become FAIL."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = optuna.storages.get_storage(storage)
    startup = config.startup_trials
    if startup is None:
        startup = default_startup_trials(config.trials)
    sampler = create_sampler(config.sampler, seed=config.seed, startup_trials=startup)
    exists = config.study_name in {s.study_name for s in store.get_all_studies()}
    if exists and not resume:
        raise IAPruneError(f"study {config.study_name!r} already exists in {storage}; use --resume")
    directions = [StudyDirection.MAXIMIZE]
    if config.objective.multi_objective:
        directions.append(StudyDirection.MINIMIZE)
    study = optuna.create_study(
        storage=store,
        sampler=sampler,
        study_name=config.study_name,
        directions=directions,
        load_if_exists=resume,
    )
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        store.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        log.warning("trial %d was left running by a crash: marked failed", trial.number)
    return study


def check_reachable(evaluator: CandidateEvaluator, space: Space, config: SearchConfig) -> None:
    """Raise a one-line error when even the smallest allowed model misses a budget."""
    budgets = config.objective.budgets()
    if not budgets:
        return
    cost, ratios = evaluator.costs(space.smallest())
    values = constraint_values(ratios, cost.latency_ms, budgets)
    for (key, bound), value in zip(sorted(budgets.items()), values, strict=True):
        if value > 0:
            reached = cost.latency_ms if key == "latency_ms" else ratios[key]
            unit = " ms" if key == "latency_ms" else " of the original"
            widths = _widths(space)
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
    warm_starts: Mapping[str, Mapping[str, float]] | None = None,
) -> SearchResult:
    """Run (or resume) the search and return the best feasible configuration.

    Finished trials live in ``storage`` (any Optuna storage URL), so an interrupted
    search resumed with ``resume=True`` only runs the trials still missing.
    ``warm_starts`` (``{name: params}``, see :func:`iaprune.search.builder.warm_starts`)
    are enqueued as the first trials of a new study; the result's ``selection`` says
    how the final candidate was chosen among them and the searched ones. The result's
    ``spec`` is complete: kept widths and the kept filter indices of every group.
    """
    objective_cfg = config.objective
    budget_keys = sorted(objective_cfg.budgets())
    check_reachable(evaluator, space, config)
    study = open_study(config, storage=storage, resume=resume)
    n_trials = config.trials
    if config.sampler == "uniform":
        n_trials = 1
        if not _complete(study):
            study.enqueue_trial(
                _uniform_params(evaluator, space, config), user_attrs={"warm_start": "uniform"}
            )
    elif not study.trials and config.warm_start:
        for name, params in (warm_starts or {}).items():
            study.enqueue_trial(dict(params), user_attrs={"warm_start": name})

    def objective(trial: optuna.Trial) -> float | tuple[float, float]:
        keep = space.suggest(trial)
        try:
            result = evaluator(keep)
        except Exception as exc:  # one bad candidate fails its trial, not the search
            trial.set_user_attr("error", one_line(exc))
            log.warning("trial %d failed: %s", trial.number, one_line(exc))
            raise
        value, constraints = score(
            result.accuracy, result.ratios, result.cost.latency_ms, objective_cfg
        )
        trial.set_user_attr("constraints", constraints)
        for key, excess in zip(budget_keys, constraints, strict=True):
            trial.set_constraint(key, excess)
        trial.set_user_attr("accuracy", result.accuracy)
        trial.set_user_attr("ratios", result.ratios)
        trial.set_user_attr("latency_ms", result.cost.latency_ms)
        trial.set_user_attr("keep", keep)
        log.info(
            "trial %d: val accuracy %.4f, ratios %s",
            trial.number,
            result.accuracy,
            {k: round(v, 3) for k, v in result.ratios.items()},
        )
        if objective_cfg.multi_objective:
            return value, pareto_cost(result.ratios, result.cost.latency_ms, objective_cfg)
        return value

    remaining = max(0, n_trials - len(_complete(study)))
    for _ in progress(range(remaining), desc=f"search ({config.sampler})"):
        study.optimize(objective, n_trials=1, catch=(Exception,))
    result = _result(study, space, config)
    if config.rescore and not objective_cfg.multi_objective and config.sampler != "uniform":
        _robust_choice(study, evaluator, config, result)
    result.spec = evaluator.pruner.spec(result.spec.keep)  # with the kept filter indices
    return result


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


def _widths(space: Space) -> SearchSpace:
    return space.space if isinstance(space, AllocationSpace) else space


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _feasible(trial: optuna.trial.FrozenTrial) -> bool:
    return all(c <= 0 for c in trial.user_attrs.get("constraints", []))


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
            "feasible": _feasible(t),
            "keep": t.user_attrs.get("keep", {}),
        }
        for t in _complete(study)
    ]


def _rescored(
    study: optuna.Study, evaluator: CandidateEvaluator, config: SearchConfig, trials: list[Any]
) -> dict[str, float]:
    """Second score of ``trials`` with another seed, cached in the study (resume keeps it)."""
    saved = dict(study.user_attrs.get("rescored", {}))
    for t in trials:
        if str(t.number) not in saved:
            try:
                r = evaluator(t.user_attrs["keep"], seed=config.seed + 1)
            except Exception as exc:  # a candidate that fails to re-score is not chosen
                log.warning("re-scoring trial %d failed: %s", t.number, one_line(exc))
                continue
            value, _ = score(r.accuracy, r.ratios, r.cost.latency_ms, config.objective)
            saved[str(t.number)] = value
            study.set_user_attr("rescored", saved)
    return saved


def _robust_choice(
    study: optuna.Study, evaluator: CandidateEvaluator, config: SearchConfig, result: SearchResult
) -> None:
    """Keep the best warm start unless a searched candidate beats it by more than the noise.

    The best ``config.rescore`` searched candidates and every warm start are scored a
    second time with another seed; the noise is the mean absolute difference of the two
    scores, and candidates are compared on their mean score.
    """
    feasible = [t for t in _complete(study) if _feasible(t)]
    warm = [t for t in feasible if "warm_start" in t.user_attrs]
    searched = sorted(
        (t for t in feasible if "warm_start" not in t.user_attrs),
        key=lambda t: (-t.values[0], t.number),
    )[: config.rescore]
    pool = warm + searched
    if len(pool) < 2:
        return
    second = _rescored(study, evaluator, config, pool)
    warm = [t for t in warm if str(t.number) in second]
    searched = [t for t in searched if str(t.number) in second]
    pool = warm + searched
    if not pool:
        return
    mean = {t.number: (t.values[0] + second[str(t.number)]) / 2 for t in pool}
    noise = sum(abs(t.values[0] - second[str(t.number)]) for t in pool) / len(pool)

    def best_of(trials: list[Any]) -> Any:
        return max(trials, key=lambda t: (mean[t.number], -t.number))

    chosen = best_of(pool)
    reason = "best mean score"
    if warm and searched:
        heuristic, candidate = best_of(warm), best_of(searched)
        beats = mean[candidate.number] - mean[heuristic.number] > noise
        chosen = candidate if beats else heuristic
        reason = (
            f"searched trial beats the best warm start by more than the noise {noise:.4f}"
            if beats
            else f"no searched trial beats warm start {heuristic.user_attrs['warm_start']!r} "
            f"by more than the noise {noise:.4f}"
        )
    result.best_trial = chosen.number
    result.best_value = float(chosen.values[0])
    result.accuracy = float(chosen.user_attrs["accuracy"])
    result.ratios = dict(chosen.user_attrs["ratios"])
    result.spec = PruningSpec(keep=dict(chosen.user_attrs["keep"]), original=result.spec.original)
    result.selection = {
        "chosen": chosen.number,
        "reason": reason,
        "noise": noise,
        "scores": {
            str(t.number): {
                "first": float(t.values[0]),
                "second": second[str(t.number)],
                "warm_start": t.user_attrs.get("warm_start"),
            }
            for t in pool
        },
    }


def _result(study: optuna.Study, space: Space, config: SearchConfig) -> SearchResult:
    trials = _complete(study)
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    if not trials:
        why = next((t.user_attrs["error"] for t in failed if "error" in t.user_attrs), "")
        raise IAPruneError(f"all {len(failed)} trials failed; first error: {why}")
    feasible = [t for t in trials if _feasible(t)]
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
    )
