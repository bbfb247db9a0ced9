"""Budget reachability and the uniform allocation (one keep-ratio for every group).

The uniform allocation is the search's first warm start (and the whole ``uniform``
sampler); the largest ratio meeting every budget is found by bisection on costs alone.
"""

from __future__ import annotations

from collections.abc import Collection

from iaprune.config import SearchConfig
from iaprune.errors import IAPruneError, one_line
from iaprune.objective import constraint_values
from iaprune.search.bisection import bisect
from iaprune.search.builder import Space
from iaprune.search.evaluate import CandidateEvaluator
from iaprune.search.projection import AllocationSpace
from iaprune.search.space import SearchSpace


def describe_smallest(space: Space) -> str:
    """The limits of the smallest allowed model, for messages."""
    widths = _widths(space)
    return f"min ratio {widths.min_ratio:g}, min keep {widths.min_keep}, round to {widths.round_to}"


def check_reachable(
    evaluator: CandidateEvaluator,
    space: Space,
    config: SearchConfig,
    *,
    skip: Collection[str] = (),
) -> None:
    """Raise a one-line error when even the smallest allowed model misses a budget.

    ``skip``: budgets not checked here (the latency budgets checked by timing A/B,
    :func:`iaprune.search.latency_fit.check_latency_floor`); the smallest model is built
    all the same, so a model that fails at narrow widths is named here.
    """
    every = config.objective.budgets()
    if not every:
        return
    budgets = {k: v for k, v in every.items() if k not in skip}
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
                f"({describe_smallest(space)}) reaches {reached:.4g}{unit}"
            )


def uniform_ratio(evaluator: CandidateEvaluator, space: SearchSpace, config: SearchConfig) -> float:
    """Largest single keep-ratio meeting every budget, by bisection on costs alone."""
    budgets = config.objective.budgets()
    if not budgets:
        raise IAPruneError("the uniform baseline needs a budget (e.g. --max-macs 0.5)")

    def feasible(ratio: float) -> bool:
        cost, ratios = evaluator.costs(space.uniform(ratio))
        return max(constraint_values(ratios, cost.latency_ms, budgets)) <= 0

    if feasible(1.0):
        return 1.0
    return bisect(feasible, space.min_ratio, 1.0, 12)[0]


def uniform_keep(
    evaluator: CandidateEvaluator, space: SearchSpace, config: SearchConfig
) -> dict[str, int]:
    """The uniform allocation: one keep-ratio for every group, the largest meeting the budgets.

    Raises:
        IAPruneError: no budget, or even the smallest allowed model misses one.
    """
    check_reachable(evaluator, space, config)
    return space.uniform(uniform_ratio(evaluator, space, config))


def uniform_params(
    evaluator: CandidateEvaluator, space: Space, config: SearchConfig
) -> dict[str, float]:
    """The search parameters of the uniform allocation in ``space``."""
    if isinstance(space, AllocationSpace):
        return space.uniform_params()
    return space.params_for(uniform_ratio(evaluator, space, config))


def _widths(space: Space) -> SearchSpace:
    return space.space if isinstance(space, AllocationSpace) else space
