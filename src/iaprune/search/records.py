"""What a search stores: trial attribute keys, :class:`TrialRecord` and :class:`SearchResult`.

Every Optuna user attribute a trial of an iaprune study carries is named here once (as
Optuna keeps ``_CONSTRAINTS_KEY`` beside the code that writes it); the study-wide
attributes of the worker protocol and the local anchor stay with their code
(:mod:`iaprune.search.workers`, :mod:`iaprune.search.local`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from iaprune.errors import IAPruneError, one_line
from iaprune.formats import current
from iaprune.pareto import TrialPoint
from iaprune.pareto import pareto_front as front_of
from iaprune.pruning.spec import PruningSpec
from iaprune.rundir import RunDir

ACCURACY_KEY = "accuracy"
"""Trial user attribute: the candidate's validation score (accuracy)."""
RATIOS_KEY = "ratios"
"""Trial user attribute: cost ratios pruned / unpruned, by cost name."""
LATENCY_KEY = "latency_ms"
"""Trial user attribute: the candidate's latency in ms (None without a latency cost)."""
KEEP_KEY = "keep"
"""Trial user attribute: the kept width of every group."""
CONSTRAINTS_KEY = "constraints"
"""Trial user attribute: excess over each budget, by sorted budget name (<= 0: met)."""
WARM_START_KEY = "warm_start"
"""Trial user attribute of an enqueued warm start: its name (``uniform``, ...)."""
WARM_KEEP_KEY = "warm_keep"
"""Trial user attribute of an enqueued warm start: the widths it is evaluated at."""
WARM_RESULT_KEY = "warm_result"
"""Trial user attribute: a warm start's evaluation made before it was enqueued (``local``)."""
DUPLICATE_KEY = "same_widths_as"
"""Trial user attribute of a trial whose widths an earlier trial evaluated: that trial's number."""
WORKER_KEY = "worker"
"""Trial user attribute: ``host:pid`` of the process that ran the trial."""
SURPLUS_KEY = "surplus"
"""Trial user attribute of a trial pruned because the study already had its trials."""
ERROR_KEY = "error"
"""Trial user attribute of a trial whose evaluation raised: the error on one line."""

WARM_STARTED_KEY = "warm_started"
"""Study attribute set once the warm starts are enqueued (a resumed study never repeats them)."""
FINAL_SCORES_KEY = "final_scores"
"""Study user attribute caching finalist scores for resume: ``"trial:seed:scorer" -> value``,
where ``scorer`` names the evaluator's settings, so a score is never reused by another."""


@dataclass(frozen=True)
class TrialRecord:
    """What a scored trial stores about its candidate (its user attributes)."""

    keep: dict[str, int]
    accuracy: float | None  # None: the trial was never scored
    ratios: dict[str, float]
    latency_ms: float | None
    constraints: list[float]

    def store(self, trial: optuna.Trial) -> None:
        """Write the record into ``trial``'s user attributes."""
        trial.set_user_attr(CONSTRAINTS_KEY, self.constraints)
        trial.set_user_attr(ACCURACY_KEY, self.accuracy)
        trial.set_user_attr(RATIOS_KEY, self.ratios)
        trial.set_user_attr(LATENCY_KEY, self.latency_ms)
        trial.set_user_attr(KEEP_KEY, self.keep)

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialRecord:
        """The record ``trial`` stored (missing attributes: empty, None)."""
        attrs = trial.user_attrs
        return cls(
            keep=attrs.get(KEEP_KEY, {}),
            accuracy=attrs.get(ACCURACY_KEY),
            ratios=attrs.get(RATIOS_KEY, {}),
            latency_ms=attrs.get(LATENCY_KEY),
            constraints=attrs.get(CONSTRAINTS_KEY, []),
        )

    @property
    def feasible(self) -> bool:
        """Whether every budget is met (every constraint value <= 0)."""
        return all(c <= 0 for c in self.constraints)


def meets_budgets(trial: FrozenTrial) -> bool:
    """Whether ``trial`` met every budget (its recorded constraint values are <= 0)."""
    return all(c <= 0 for c in trial.user_attrs.get(CONSTRAINTS_KEY, []))


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The finished (complete) trials of ``study``, in order."""
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def trial_history(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per finished trial, in order (``cost`` only in pareto mode)."""
    rows = []
    for t in complete_trials(study):
        record = TrialRecord.of(t)
        rows.append(
            {
                "number": t.number,
                "value": t.values[0],
                **({"cost": t.values[1]} if len(t.values) > 1 else {}),
                "accuracy": record.accuracy,
                "ratios": record.ratios,
                "latency_ms": record.latency_ms,
                "feasible": record.feasible,
                "keep": record.keep,
                "warm_start": t.user_attrs.get(WARM_START_KEY),
            }
        )
    return rows


def pareto_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Feasible history rows not dominated in (accuracy up, ``cost`` down), by increasing cost."""
    by_number = {r["number"]: r for r in rows}
    points = [TrialPoint(r["number"], r["accuracy"], r["cost"], r["feasible"]) for r in rows]
    return [by_number[p.number] for p in front_of(points)]


def choose_from_front(front: list[dict[str, Any]], tolerance: float = 0.01) -> dict[str, Any]:
    """The cheapest Pareto point within ``tolerance`` of the front's best accuracy."""
    best = max(r["accuracy"] for r in front)
    return min((r for r in front if r["accuracy"] >= best - tolerance), key=lambda r: r["cost"])


@dataclass
class SearchResult:
    """Outcome of a search: the best feasible configuration and every trial.

    ``ratios`` are the chosen candidate's cost ratios (pruned / unpruned), not kept
    fractions. ``selection`` is the finalists' choice
    (:meth:`iaprune.search.choice.Selection.to_dict`; empty when none was made).
    """

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

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: object = "search.json") -> SearchResult:
        """The result :meth:`to_dict` wrote; a one-line error naming ``where`` when malformed."""
        try:
            data = current(data, where=str(where))
            return cls(**{**data, "spec": PruningSpec.from_dict(data["spec"])})
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise IAPruneError(f"{where} is invalid: {one_line(exc, 200)}") from exc

    @classmethod
    def load(cls, run: RunDir) -> SearchResult:
        """A run directory's search.json (:meth:`from_dict`)."""
        return cls.from_dict(run.read_dict("search.json"), where=run / "search.json")

    def save(self, run: RunDir) -> None:
        """Write search.json and spec.json into ``run`` (each atomically)."""
        run.write_json("search.json", self.to_dict())
        self.spec.save(run / "spec.json")
