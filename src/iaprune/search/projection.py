"""Budget-aware search space: relative allocations scaled onto the budget.

Sampling one keep-ratio per group independently (the ``free`` space) lands most
candidates far below the budget, and the noisy "best" is then often a model much smaller
than allowed. The ``budget`` space instead lets the sampler propose a *relative*
allocation ``a_c`` in ``[low, 1]`` per cluster of groups (see :func:`cluster_groups`) and
projects it onto the budget: every group ``g`` of cluster ``c`` keeps

    ``k_g(s) = count_g(min(1, s * a_c))``

filters, with the largest scale ``s`` for which every MACs/params budget still holds
(bisection; ``count_g`` rounds to the group's allowed widths, so ``k_g`` is monotone in
``s``). A greedy fill then adds one rounding step at a time to the groups furthest below
their share while the budget allows, so each candidate uses the budget up to about one
rounding step. ``a = (1, ..., 1)`` is the uniform allocation.

Any cost that grows with the widths and is cheap to predict can be projected onto.
MACs and params come from :class:`~iaprune.search.widthcost.WidthCost` (exact,
microseconds per configuration); a latency budget (``latency``, a ratio of the unpruned
model's latency, or ``latency_ms``) from a *predictor* ``keep -> cost``, the run's latency
table (:func:`latency_predictors`; a prediction takes tens of microseconds). A predicted
cost may be slightly non-monotone (timing noise in the table's grid): bisection and fill
only ever return configurations that meet every budget, so this can cost a little of the
budget, never exceed it. Budgets without a cheap predictor (memory) stay Optuna constraints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

from iaprune.config import TIE_MODES
from iaprune.errors import IAPruneError
from iaprune.search.bisection import bisect
from iaprune.search.space import SearchSpace
from iaprune.search.widthcost import WidthCost

if TYPE_CHECKING:
    from iaprune.cost.lut import LatencyTable

PROJECTABLE = ("macs", "params")
"""Budgets every model can be projected onto (exact width formulas)."""
PREDICTABLE = ("latency", "latency_ms")
"""Budgets projected onto when a predictor for them is given (:func:`latency_predictors`)."""

Predictor = Callable[[Mapping[str, int]], float]
"""A cost of kept widths ``{group: kept}``, growing with every width."""


def latency_predictors(table: LatencyTable) -> dict[str, Predictor]:
    """Predictors of the ``latency`` ratio and of ``latency_ms`` from a latency table.

    The ratio is to the table's prediction for the unpruned model, as the trial costs of
    the ``predicted`` cost model are (:class:`~iaprune.cost.lut.PredictedCostModel`).
    """
    full = table.predict({})

    def ratio(keep: Mapping[str, int]) -> float:
        return table.predict(keep) / full

    return {"latency": ratio, "latency_ms": table.predict}


def cluster_groups(
    space: SearchSpace, cost: WidthCost, mode: str = "stage"
) -> dict[str, tuple[str, ...]]:
    """Tie channel groups into search dimensions.

    ``stage``: groups with the same width, the same output resolution and the same kind
    (a residual group of several convs, or a single conv) share one allocation (VGG16:
    5 dimensions for 13 groups; ResNet-56: 6 for 30). ``none``: one dimension per group.
    Clusters are named after their first group.
    """
    if mode not in TIE_MODES:
        raise IAPruneError(f"unknown --tie {mode!r}; valid: {', '.join(TIE_MODES)}")
    if mode == "none":
        return {g.name: (g.name,) for g in space.groups}
    positions = {layer.name: layer.positions for layer in cost.layers}
    clusters: dict[tuple[int, int, bool], list[str]] = {}
    for g in space.groups:
        key = (g.channels, positions.get(g.name, 0), len(g.convs) > 1)
        clusters.setdefault(key, []).append(g.name)
    return {names[0]: tuple(names) for names in clusters.values()}


@dataclass
class BudgetProjection:
    """Scale allocations onto ``budgets``.

    ``budgets`` are ratios of the unpruned model's MACs/params (from ``cost``) or costs
    with a ``predictors`` entry (``{"latency": 0.4}`` with :func:`latency_predictors`).
    """

    space: SearchSpace
    cost: WidthCost
    budgets: Mapping[str, float]
    predictors: Mapping[str, Predictor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        allowed = {*PROJECTABLE, *self.predictors}
        unknown = set(self.budgets) - allowed
        if unknown or not self.budgets:
            raise IAPruneError(
                f"the budget space projects onto {', '.join(sorted(allowed))} budgets only"
            )

    def with_budget(self, key: str, bound: float) -> BudgetProjection:
        """This projection with budget ``key`` set to ``bound`` (the others unchanged)."""
        return replace(self, budgets={**self.budgets, key: bound})

    def values(self, keep: Mapping[str, int]) -> dict[str, float]:
        """The projected costs of ``keep``, keyed like :attr:`budgets`."""
        out: dict[str, float] = {}
        if any(k in PROJECTABLE for k in self.budgets):
            ratios = self.cost.ratios(keep)
            out.update({k: ratios[k] for k in self.budgets if k in PROJECTABLE})
        out.update({k: self.predictors[k](keep) for k in self.budgets if k not in PROJECTABLE})
        return out

    def feasible(self, keep: Mapping[str, int]) -> bool:
        """Whether ``keep`` meets every projected budget."""
        return self.within(self.values(keep))

    def within(self, values: Mapping[str, float]) -> bool:
        """Whether projected costs ``values`` (from :meth:`values`) meet every budget."""
        return all(values[k] <= bound * (1 + 1e-12) for k, bound in self.budgets.items())

    def _at(self, alloc: Mapping[str, float], scale: float) -> dict[str, int]:
        return {
            g.name: self.space.count(g, min(1.0, scale * alloc[g.name])) for g in self.space.groups
        }

    def project(self, alloc: Mapping[str, float]) -> dict[str, int]:
        """Kept counts of the allocation ``{group: a_g > 0}`` scaled onto the budget."""
        if min(alloc[g.name] for g in self.space.groups) <= 0:
            raise IAPruneError("allocations must be positive")
        hi = 1.0 / min(alloc[g.name] for g in self.space.groups)
        full = self._at(alloc, hi)
        if self.feasible(full):
            return full
        lo, hi = bisect(lambda scale: self.feasible(self._at(alloc, scale)), 0.0, hi, 40)
        keep = self._at(alloc, lo)
        if not self.feasible(keep):  # even the smallest widths miss the budget
            return self.space.smallest()
        return self.fill(keep, {n: min(1.0, hi * a) for n, a in alloc.items()})

    def fill(self, keep: dict[str, int], target: Mapping[str, float]) -> dict[str, int]:
        """``keep`` grown one allowed step at a time, the group furthest below its share first.

        ``target`` is each group's share of its width (0-1). Only groups still below their
        share grow, and only while the budget holds, so the fill spends the slack without
        distorting the allocation (a cheap group is not filled to its width) and no group
        shrinks. ``keep`` must meet the budget.
        """
        widths = {g.name: g.channels for g in self.space.groups}
        steps = {g.name: self.space.step(g) for g in self.space.groups}
        blocked: set[str] = set()
        while True:
            open_groups = [
                n
                for n in keep
                if keep[n] < widths[n] and keep[n] / widths[n] < target[n] and n not in blocked
            ]
            if not open_groups:
                return keep
            name = max(open_groups, key=lambda n: target[n] - keep[n] / widths[n])
            trial = dict(keep)
            trial[name] = min(widths[name], keep[name] + steps[name])
            if self.feasible(trial):
                keep = trial
            else:
                blocked.add(name)


@dataclass
class AllocationSpace:
    """The ``budget`` search space: one allocation per cluster, projected onto the budget."""

    projection: BudgetProjection
    clusters: dict[str, tuple[str, ...]]
    low: float = 0.2

    @property
    def space(self) -> SearchSpace:
        """The underlying per-group widths (bounds and rounding)."""
        return self.projection.space

    def param_name(self, cluster: str) -> str:
        """Optuna parameter name of a cluster's allocation."""
        return f"a:{cluster}"

    def keep_for(self, params: Mapping[str, float]) -> dict[str, int]:
        """Kept counts of Optuna params ``{"a:cluster": a}``."""
        alloc = {
            name: params[self.param_name(c)] for c, names in self.clusters.items() for name in names
        }
        return self.projection.project(alloc)

    def suggest(self, trial: optuna.Trial) -> dict[str, int]:
        """Sample one allocation per cluster and return kept counts on the budget."""
        params = {
            self.param_name(c): trial.suggest_float(self.param_name(c), self.low, 1.0)
            for c in self.clusters
        }
        return self.keep_for(params)

    def params_for_keep(self, keep: Mapping[str, int]) -> dict[str, float]:
        """Params whose projection is close to ``keep`` (for enqueued warm starts)."""
        widths = {g.name: g.channels for g in self.space.groups}
        shares = {
            c: float(np.mean([keep.get(n, widths[n]) / widths[n] for n in names]))
            for c, names in self.clusters.items()
        }
        top = max(shares.values())
        return {self.param_name(c): max(self.low, min(1.0, s / top)) for c, s in shares.items()}

    def uniform_params(self) -> dict[str, float]:
        """The uniform allocation (every group keeps the same share)."""
        return {self.param_name(c): 1.0 for c in self.clusters}

    def smallest(self) -> dict[str, int]:
        """Counts of the smallest allowed model."""
        return self.space.smallest()


def ranked_scores(raw: Any) -> np.ndarray:
    """A group's filter scores divided by their mean, highest first.

    Mean 1 per group, so residual groups (summed scores) compare fairly across groups.
    """
    values = np.asarray(raw.detach().cpu() if hasattr(raw, "detach") else raw, dtype=float)
    return np.sort(values / (values.mean() + 1e-12))[::-1]


def global_allocation(scores: Mapping[str, Any], projection: BudgetProjection) -> dict[str, int]:
    """Kept counts of global magnitude pruning at the budget.

    Every filter's score (normalised by its group's mean) is ranked across all groups and
    the lowest are removed until the budget holds, as torch-pruning's global pruning does;
    the threshold is found by bisection.
    """
    space = projection.space
    arrays = {g.name: ranked_scores(scores[g.name]) for g in space.groups}

    def keep_at(threshold: float) -> dict[str, int]:
        keep = {}
        for g in space.groups:
            kept = int(np.sum(arrays[g.name] >= threshold))
            keep[g.name] = space.count(g, kept / g.channels)
        return keep

    lo = 0.0
    hi = float(max(a[0] for a in arrays.values())) + 1.0
    if projection.feasible(keep_at(lo)):
        return keep_at(lo)
    # a higher threshold removes more filters: bisect on "still over the budget"
    lo, hi = bisect(lambda t: not projection.feasible(keep_at(t)), lo, hi, 50)
    keep = keep_at(hi)
    return keep if projection.feasible(keep) else space.smallest()
