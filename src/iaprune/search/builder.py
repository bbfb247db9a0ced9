"""Build the search space and its warm starts from a pruner and a :class:`SearchConfig`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from iaprune.config import SearchConfig
from iaprune.pruning.surgery import Pruner
from iaprune.search.heuristics import HEURISTICS
from iaprune.search.local import LocalSpace
from iaprune.search.projection import (
    PROJECTABLE,
    AllocationSpace,
    BudgetProjection,
    Predictor,
    cluster_groups,
)
from iaprune.search.space import SearchSpace
from iaprune.search.widthcost import WidthCost

log = logging.getLogger(__name__)

Space = SearchSpace | AllocationSpace


def make_space(
    pruner: Pruner,
    input_shape: Sequence[int],
    config: SearchConfig,
    *,
    round_to: int = 1,
    predictors: Mapping[str, Predictor] | None = None,
) -> Space:
    """The search space ``config.space`` names over ``pruner``'s channel groups.

    The ``budget`` and ``local`` spaces need the constrained objective with a MACs or
    params budget, or a budget that ``predictors`` predict (a latency budget with
    :func:`~iaprune.search.projection.latency_predictors`); every such budget is projected
    onto. Otherwise (weighted or pareto objectives, memory-only budgets) the ``free`` space
    is used and a message says so.
    """
    widths = width_space(pruner, config, round_to=round_to)
    if config.space == "free":
        return widths
    objective = config.objective
    projectable = {*PROJECTABLE, *(predictors or {})}
    budgets = {k: v for k, v in objective.budgets().items() if k in projectable}
    if objective.kind != "constrained" or not budgets:
        log.info(
            "budget space needs the constrained objective with --max-macs, --max-params or "
            "a latency budget; searching the free space"
        )
        return widths
    cost = WidthCost(pruner, input_shape, probe=lambda name, w: _probe(widths, name))
    projection = BudgetProjection(widths, cost, budgets, dict(predictors or {}))
    if config.space == "local":
        return LocalSpace(projection, cluster_groups(widths, cost, "none"))
    return AllocationSpace(projection, cluster_groups(widths, cost, config.tie))


def width_space(pruner: Pruner, config: SearchConfig, *, round_to: int = 1) -> SearchSpace:
    """The free space: every group's width between its allowed minimum and full width."""
    return SearchSpace.from_groups(
        pruner.groups, min_ratio=config.min_ratio, min_keep=config.min_keep, round_to=round_to
    )


def _probe(space: SearchSpace, name: str) -> int:
    group = next(g for g in space.groups if g.name == name)
    return min(group.channels, max(space.lower(group), group.channels // 2))


@dataclass(frozen=True)
class WarmStart:
    """A heuristic's allocation, enqueued as a first trial of the search.

    ``keep`` are its exact widths (what the trial evaluates); ``params`` the nearest point
    of the search space (what the sampler learns from: with tied groups the space cannot
    express every per-layer allocation).
    """

    params: dict[str, float]
    keep: dict[str, int]


def warm_starts(pruner: Pruner, space: Space) -> dict[str, WarmStart]:
    """The heuristics' allocations at the budget, by name.

    ``uniform`` (the same share everywhere) first, then every heuristic of
    :data:`~iaprune.search.heuristics.HEURISTICS` that applies: ``global`` is torch-pruning's
    global L1 pruning stepped to the budget; ``knapsack`` buys the most filter importance per
    unit of projected cost (MACs, params or predicted latency); ``ranking`` is the one-shot
    global ranking of the group-normalised filter scores; ``inner`` keeps the residual
    streams whole and prunes the inner convs uniformly (models with residual streams only).
    Starts with the widths of an earlier one are left out.
    """
    if not isinstance(space, AllocationSpace):
        return {}
    projection = space.projection
    uniform = space.uniform_params()
    starts = {"uniform": WarmStart(uniform, space.keep_for(uniform))}
    for name, heuristic in HEURISTICS.items():
        keep = heuristic(pruner, projection)
        if keep is not None and all(keep != s.keep for s in starts.values()):
            starts[name] = WarmStart(space.params_for_keep(keep), keep)
    return starts
