"""Every warm-start heuristic lands on the budget, on every zoo model (a shared contract),
and the residual-aware ``inner`` heuristic keeps the streams whole."""

from __future__ import annotations

import pytest

from iaprune.config import ObjectiveConfig, SearchConfig
from iaprune.pruning import Pruner
from iaprune.search import AllocationSpace, make_space, warm_starts
from iaprune.search.heuristics import HEURISTICS, inner_allocation, residual_groups
from iaprune.search.projection import BudgetProjection
from iaprune.search.space import SearchSpace
from iaprune.search.widthcost import WidthCost
from tests.search.test_latency_projection import stand_in_table
from tests.search.test_projection import MODELS, _pruner, _shape

BUDGETS = [{"macs": 0.3}, {"latency": 0.4}]


def _projection(name: str, budgets: dict[str, float]) -> tuple[Pruner, BudgetProjection]:
    pruner = _pruner(name)
    space = SearchSpace.from_groups(pruner.groups, round_to=1)
    predictors = stand_in_table(pruner) if "latency" in budgets else {}
    return pruner, BudgetProjection(space, WidthCost(pruner, _shape(name)), budgets, predictors)


@pytest.mark.parametrize("budgets", BUDGETS, ids=lambda b: next(iter(b)))
@pytest.mark.parametrize("heuristic", HEURISTICS.names())
@pytest.mark.parametrize("model", MODELS)
def test_every_heuristic_is_an_allowed_point_on_the_budget(model, heuristic, budgets) -> None:
    pruner, projection = _projection(model, budgets)
    keep = HEURISTICS.get(heuristic)(pruner, projection)
    if keep is None:
        assert heuristic == "inner" and not residual_groups(pruner)
        return
    space = projection.space
    assert set(keep) == {g.name for g in space.groups}
    assert all(space.lower(g) <= keep[g.name] <= g.channels for g in space.groups)
    assert all(keep[g.name] % g.multiple == 0 for g in space.groups)
    if not projection.feasible(space.smallest()):
        return  # nothing meets the budget: the smallest model is the answer
    assert projection.feasible(keep)


def test_residual_streams_are_groups_written_by_two_dense_convs() -> None:
    resnet = _pruner("resnet56")
    streams = residual_groups(resnet)
    assert streams and streams < {g.name for g in resnet.groups}
    for g in resnet.groups:
        assert (g.name in streams) == (len(g.convs) >= 2)
    assert residual_groups(_pruner("vgg16")) == set()
    # a depthwise conv follows its producer's channels: not a stream on its own
    assert residual_groups(_pruner("depthwise")) == set()


def test_inner_keeps_the_streams_whole_and_prunes_the_inner_convs_uniformly() -> None:
    pruner, projection = _projection("resnet56", {"macs": 0.5})
    keep = inner_allocation(pruner, projection)
    assert keep is not None and projection.feasible(keep)
    streams = residual_groups(pruner)
    groups = {g.name: g for g in pruner.groups}
    assert all(keep[n] == groups[n].channels for n in streams)
    inner = [keep[n] / g.channels for n, g in groups.items() if n not in streams]
    step = max(projection.space.step(g) / g.channels for n, g in groups.items())
    assert max(inner) - min(inner) <= step + 1e-9
    assert max(inner) < 1.0
    assert projection.values(keep)["macs"] > 0.5 - 0.05  # it uses the budget


def test_inner_does_not_apply_without_residual_streams() -> None:
    pruner, projection = _projection("vgg16", {"macs": 0.5})
    assert inner_allocation(pruner, projection) is None


@pytest.mark.parametrize(("model", "expected"), [("resnet56", True), ("vgg16", False)])
def test_warm_starts_at_a_macs_budget_offer_every_heuristic_that_applies(model, expected):
    pruner = _pruner(model)
    config = SearchConfig(objective=ObjectiveConfig(max_macs=0.4))
    space = make_space(pruner, _shape(model), config)
    assert isinstance(space, AllocationSpace)
    starts = warm_starts(pruner, space)
    assert list(starts)[0] == "uniform"
    assert {"uniform", "knapsack"} <= set(starts)
    assert ("inner" in starts) == expected
    widths = [tuple(sorted(s.keep.items())) for s in starts.values()]
    assert len(set(widths)) == len(widths)  # no two starts evaluate the same widths
    for start in starts.values():
        assert space.projection.feasible(start.keep)
