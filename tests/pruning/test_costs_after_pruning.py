"""Pruned shapes and MAC/parameter counts match hand computation on a tiny net."""

from __future__ import annotations

import torch
from torch import nn

from iaprune.cost import count_macs, count_params
from iaprune.pruning import Pruner


def _tiny() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 10),
    )


def test_pruned_tiny_net_costs_match_hand_count() -> None:
    model = _tiny()
    pruner = Pruner(model, torch.randn(1, 1, 8, 8))
    assert [(g.name, g.channels) for g in pruner.groups] == [("0", 4), ("3", 6)]
    pruned = pruner.prune({"0": 2, "3": 3})
    assert pruned[0].weight.shape == (2, 1, 3, 3)
    assert pruned[1].num_features == 2
    assert pruned[3].weight.shape == (3, 2, 3, 3)
    assert pruned[8].weight.shape == (10, 3)
    # conv1: 8x8 outputs x 2 filters x 1x3x3; conv2: 4x4 x 3 x 2x3x3; linear 3 -> 10
    assert count_macs(pruned, (1, 8, 8)) == 8 * 8 * 2 * 9 + 4 * 4 * 3 * 2 * 9 + 3 * 10
    # conv1 2*9, bn 2+2, conv2 3*2*9, bn 3+3, linear 3*10 + 10
    assert count_params(pruned) == 18 + 4 + 54 + 6 + 40
    # and the original, for reference
    assert count_macs(model, (1, 8, 8)) == 8 * 8 * 4 * 9 + 4 * 4 * 6 * 4 * 9 + 6 * 10
