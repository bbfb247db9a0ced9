"""The training-free, memoising evaluator and the public uniform allocation."""

from __future__ import annotations

import pytest
import torch

from iaprune.config import ObjectiveConfig, SearchConfig
from iaprune.cost import StaticCostModel
from iaprune.errors import IAPruneError
from iaprune.models import create_model
from iaprune.pruning import Pruner
from iaprune.search import (
    RetainedImportanceEvaluator,
    SearchSpace,
    retained_importance,
    run_search,
    uniform_keep,
)


@pytest.fixture(scope="module")
def pruner() -> Pruner:
    torch.manual_seed(0)
    model = create_model("test_vgg", num_classes=4, in_channels=1).eval()
    return Pruner(model, torch.zeros(1, 1, 8, 8), importance="l1")


def test_retained_importance_is_the_kept_share_of_l1_scores(pruner: Pruner) -> None:
    assert retained_importance(pruner, {}) == pytest.approx(1.0)
    group = pruner.groups[0]
    scores = pruner.scores[group.name]
    keep = {group.name: 2}
    share = float(torch.topk(scores, 2).values.sum() / scores.sum())
    expected = (share + len(pruner.groups) - 1) / len(pruner.groups)
    assert retained_importance(pruner, keep) == pytest.approx(expected)


def test_costs_are_computed_once_per_configuration(pruner: Pruner) -> None:
    evaluator = RetainedImportanceEvaluator(pruner, StaticCostModel())
    keep = {g.name: max(1, g.channels // 2) for g in pruner.groups}
    first = evaluator(keep)
    again = evaluator(dict(reversed(list(keep.items()))))
    assert evaluator.cost_calls == 1
    assert again.cost == first.cost and 0 < first.accuracy < 1
    assert first.ratios["macs"] < 0.5


def test_uniform_keep_is_the_largest_uniform_ratio_meeting_the_budget(pruner: Pruner) -> None:
    evaluator = RetainedImportanceEvaluator(pruner, StaticCostModel())
    space = SearchSpace.from_groups(pruner.groups, min_ratio=0.1)
    config = SearchConfig(objective=ObjectiveConfig(max_macs=0.5))
    keep = uniform_keep(evaluator, space, config)
    _, ratios = evaluator.costs(keep)
    assert ratios["macs"] <= 0.5
    bigger = {g: min(c.channels, keep[g] + 1) for g, c in ((g.name, g) for g in pruner.groups)}
    assert evaluator.costs(bigger)[1]["macs"] > 0.5 or bigger == keep
    with pytest.raises(IAPruneError, match="unreachable"):
        uniform_keep(evaluator, space, SearchConfig(objective=ObjectiveConfig(max_macs=1e-6)))


def test_search_with_the_proxy_needs_no_data(pruner: Pruner, tmp_path) -> None:
    evaluator = RetainedImportanceEvaluator(pruner, StaticCostModel())
    space = SearchSpace.from_groups(pruner.groups, min_ratio=0.1)
    config = SearchConfig(sampler="random", trials=5, objective=ObjectiveConfig(max_macs=0.5))
    result = run_search(evaluator, space, config, storage=f"sqlite:///{tmp_path / 's.db'}")
    assert result.ratios["macs"] <= 0.5
    assert result.accuracy == pytest.approx(retained_importance(pruner, result.spec.keep))
