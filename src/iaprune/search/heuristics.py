"""Heuristic allocations at the budget, computed by the library that defines them.

torch-pruning's global magnitude pruning ranks every filter of the model by its group's
L1 magnitude (the pruned convs, their norms and the input weights of the layers that
read them, normalised by the group's mean) and removes the lowest a little at a time,
re-ranking after every step. Its allocation is not the one our per-group scores give
in one shot (on a resnet56 it keeps the residual streams almost whole and thins the
inner convs), and it fine-tuned better than that one-shot ranking (``global_allocation``)
and than uniform widths. So the ``global`` warm start runs torch-pruning itself on a copy
of the model and reads the widths it reaches.

Its first step that meets the budget lands up to one step below it, so its per-group
shares are then projected onto the budget like any searched allocation. The measured
accuracies are in ``benchmarks/README.md`` ("torch-pruning's warm start projected onto
the budget"), not here, where they would go stale.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch_pruning as tp
from torch import nn

from iaprune._registry import Registry
from iaprune.errors import one_line
from iaprune.pruning.surgery import Pruner
from iaprune.search.projection import BudgetProjection, global_allocation, ranked_scores

log = logging.getLogger(__name__)

ROOTS = (nn.modules.conv._ConvNd, nn.Linear, nn.LSTM, nn.MultiheadAttention, nn.Embedding)
"""Layers torch-pruning may prune from; those outside the search's groups are ignored."""

GLOBAL_STEPS = 200
"""torch-pruning steps to the smallest allowed model (each removes ~0.5 % of the filters)."""


def torch_pruning_allocation(
    pruner: Pruner,
    projection: BudgetProjection,
    *,
    steps: int = GLOBAL_STEPS,
    onto_budget: bool = True,
) -> dict[str, int] | None:
    """Kept counts of torch-pruning's global L1 pruning, scaled onto the budget.

    Only the search's channel groups are pruned (every other layer torch-pruning could
    prune from, :data:`ROOTS`, is ignored). Widths are rounded to the space's allowed
    counts; the first step whose widths meet the budget gives per-group shares, which
    :meth:`~iaprune.search.projection.BudgetProjection.project` scales onto the budget
    (no group shrinks), so the result is a point of the space that uses the budget;
    ``onto_budget=False`` returns that step's widths as they are.
    Returns None when torch-pruning fails on the model or never reaches the budget.
    """
    space = projection.space
    model = copy.deepcopy(pruner.model).eval()
    prunable = {c for g in space.groups for c in g.convs}
    ignored = [m for n, m in model.named_modules() if isinstance(m, ROOTS) and n not in prunable]
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)}
    try:
        tp_pruner = tp.pruner.MetaPruner(
            model,
            pruner.example_input,
            importance=tp.importance.MagnitudeImportance(p=1),
            global_pruning=True,
            pruning_ratio=1.0 - space.min_ratio,
            max_pruning_ratio=1.0 - space.min_ratio,
            iterative_steps=steps,
            ignored_layers=ignored,
            round_to=space.round_to if space.round_to > 1 else None,
        )
        for step in range(steps + 1):
            keep = {
                g.name: space.count(g, convs[g.name].out_channels / g.channels)
                for g in space.groups
            }
            if projection.feasible(keep):
                return scale_onto_budget(keep, projection) if onto_budget else keep
            if step < steps:
                tp_pruner.step()
    except Exception as exc:  # a model torch-pruning cannot step keeps the other warm starts
        log.warning("torch-pruning's global allocation failed: %s", one_line(exc))
        return None
    log.warning("torch-pruning's global pruning did not reach the budget in %d steps", steps)
    return None


def scale_onto_budget(keep: dict[str, int], projection: BudgetProjection) -> dict[str, int]:
    """``keep`` (on the budget) scaled onto the budget, never below ``keep`` in any group.

    Its shares are projected onto the budget and ``keep`` is grown towards the projected
    widths one step at a time (:meth:`~iaprune.search.projection.BudgetProjection.fill`):
    every group the projection widens reaches its projected width where the budget allows,
    and a group the projection would cut (rounding) keeps its width. A ``keep`` that
    misses the budget is returned as it is.
    """
    if not projection.feasible(keep):
        return keep
    widths = {g.name: g.channels for g in projection.space.groups}
    projected = projection.project({n: keep[n] / widths[n] for n in widths})
    return projection.fill(keep, {n: projected[n] / widths[n] for n in widths})


def global_magnitude_allocation(pruner: Pruner, projection: BudgetProjection) -> dict[str, int]:
    """torch-pruning's global allocation, else the one-shot ranking of the pruner's scores.

    Either is scaled onto the budget (:func:`scale_onto_budget`).
    """
    keep = torch_pruning_allocation(pruner, projection)
    return ranking_allocation(pruner, projection) if keep is None else keep


def knapsack_allocation(scores: Mapping[str, Any], projection: BudgetProjection) -> dict[str, int]:
    """Kept counts that buy the most filter importance per unit of projected cost.

    A greedy knapsack in the spirit of HALP (Shen et al., NeurIPS 2022): every group
    starts at its smallest allowed width; then, while a step fits the budget, the group
    whose next allowed step (``space.step`` filters, its best remaining ones) adds the
    most importance per unit of added cost grows by one step. Importance is the filters'
    score normalised by its group's mean (as :func:`global_allocation` ranks them); the
    cost of a step is its largest increase of any budgeted cost relative to that budget,
    so with a latency budget the predicted latency of each layer at its widths prices the
    step (a group whose layers are slow on the target is grown less), and with a MACs
    budget its MACs do. The result meets every budget of ``projection``.
    """
    space = projection.space
    keep = space.smallest()
    if not projection.feasible(keep):
        return keep
    gains = {  # cumulative normalised importance of the best k filters
        g.name: np.concatenate([[0.0], np.cumsum(ranked_scores(scores[g.name]))])
        for g in space.groups
    }
    groups = {g.name: g for g in space.groups}
    current = projection.values(keep)
    open_groups = {n for n, g in groups.items() if keep[n] < g.channels}
    while open_groups:
        blocked: set[str] = set()
        best: tuple[float, str, dict[str, int], dict[str, float]] | None = None
        for name in sorted(open_groups):
            grown = dict(keep)
            grown[name] = min(groups[name].channels, keep[name] + space.step(groups[name]))
            values = projection.values(grown)
            if not projection.within(values):
                blocked.add(name)  # costs only grow with the other widths: it never fits again
                continue
            cost = max(max(values[k] - current[k], 0.0) / b for k, b in projection.budgets.items())
            gain = gains[name][grown[name]] - gains[name][keep[name]]
            density = gain / max(cost, 1e-12)
            if best is None or density > best[0]:
                best = (density, name, grown, values)
        open_groups -= blocked
        if best is None:
            return keep
        _, name, keep, current = best
        if keep[name] >= groups[name].channels:
            open_groups.discard(name)
    return keep


INNER_SHARE = 1e-3
"""Relative allocation of the inner groups in :func:`inner_allocation` (the residual
streams have 1): the projection's scale keeps the streams whole before it widens them."""


def residual_groups(pruner: Pruner) -> set[str]:
    """Groups whose channels are written by two or more dense convs: residual streams.

    A residual addition ties the outputs of every conv that writes into it; a depthwise
    conv (``groups == in_channels``) only follows its producer and does not count.
    """
    out = set()
    for g in pruner.groups:
        dense = [c for c in g.convs if _dense(pruner.model.get_submodule(c))]
        if len(dense) >= 2:
            out.add(g.name)
    return out


def _dense(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd) and module.groups == 1


def inner_allocation(pruner: Pruner, projection: BudgetProjection) -> dict[str, int] | None:
    """Keep the residual streams whole and prune the inner convs uniformly to the budget.

    The inner groups share one width ratio, scaled onto the budget; when the budget does
    not even allow the whole streams with the narrowest inner convs, the streams shrink
    too. None when the model has no residual stream or nothing else to prune.
    """
    names = {g.name for g in projection.space.groups}
    residual = residual_groups(pruner) & names
    if not residual or not names - residual:
        return None
    return projection.project({n: 1.0 if n in residual else INNER_SHARE for n in names})


def ranking_allocation(pruner: Pruner, projection: BudgetProjection) -> dict[str, int]:
    """The one-shot global ranking of the pruner's group-normalised scores, on the budget.

    Unlike torch-pruning's iterative global pruning (the ``global`` warm start), every
    filter is ranked once (:func:`~iaprune.search.projection.global_allocation`).
    """
    return scale_onto_budget(global_allocation(pruner.scores, projection), projection)


Heuristic = Callable[[Pruner, BudgetProjection], "dict[str, int] | None"]
"""An allocation at the budget of a projection; None when it does not apply to the model."""

HEURISTICS: Registry[Heuristic] = Registry("warm-start heuristic")
"""The warm-start heuristics besides ``uniform``, by name, enqueued in registration order:
torch-pruning's global L1 pruning, the cost-aware knapsack, the one-shot global ranking and
the residual-streams-kept inner pruning. Register another with ``@HEURISTICS.register(name)``
on a :data:`Heuristic`; ``tests/search/test_heuristics.py`` is its contract suite."""


def _knapsack(pruner: Pruner, projection: BudgetProjection) -> dict[str, int]:
    return knapsack_allocation(pruner.scores, projection)


HEURISTICS.register("global")(global_magnitude_allocation)
HEURISTICS.register("knapsack")(_knapsack)
HEURISTICS.register("ranking")(ranking_allocation)
HEURISTICS.register("inner")(inner_allocation)
