"""The width-cost formula probes only keep counts a group allows, and stays exact."""

from __future__ import annotations

import pytest
import torch

from iaprune.cost import count_macs, count_params
from iaprune.pruning import Pruner
from iaprune.search.widthcost import WidthCost
from tests.pruning.equivalence import random_keep
from tests.pruning.nets import build

SHAPE = (3, 16, 16)


@pytest.mark.parametrize("name", ["grouped4_w12", "ghost", "padded_shortcut", "split"])
def test_width_cost_is_exact_where_groups_need_multiples_or_are_excluded(name: str) -> None:
    """grouped4_w12: a groups=4 conv of 12 channels (half of 12 is no multiple of 4)."""
    pruner = Pruner(build(name, 3, seed=0), torch.zeros(1, *SHAPE))
    cost = WidthCost(pruner, SHAPE)
    for seed in range(3):
        keep = random_keep(pruner, seed)
        pruned = pruner.prune(keep)
        assert cost.costs(keep) == {
            "macs": count_macs(pruned, SHAPE),
            "params": count_params(pruned),
        }
