"""Grouped convs: allowed keep counts, excluded groups and one-line errors for bad input."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from iaprune.errors import IAPruneError
from iaprune.pruning import ExcludedGroup, Pruner, PruningSpec, apply_spec, find_groups
from tests.pruning.nets import NETS, GroupedCNN, build

X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_conv_groups_keep_multiples_of_groups(groups: int) -> None:
    found = {g.name: g for g in find_groups(GroupedCNN(groups=groups).eval(), X[:1])}
    assert {n: g.multiple for n, g in found.items()} == {
        "stem.0": groups,  # residual around the grouped 3x3 conv
        "grouped_pw": groups,
        "pw.0": 1,
    }
    stem = found["stem.0"]
    assert stem.allows(groups) and not stem.allows(groups + 1) and not stem.allows(0)
    assert stem.default_indices(2 * groups) == [
        j * (16 // groups) + p for j in range(groups) for p in range(2)
    ]


def test_unsafe_groups_are_excluded_with_a_reason(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="iaprune.pruning.groups"):
        pruner = Pruner(build("grouped_edge", 3, seed=0), X[:1])
    assert [g.name for g in pruner.groups] == ["stem.0", "pw"]
    reasons = {e.name: e.reason for e in pruner.excluded}
    assert set(reasons) == {"branch_a", "branch_b", "grouped.0", "multiplier"}
    assert "only part of its input channels" in reasons["branch_a"]
    assert "allows no width below all 8 channels" in reasons["grouped.0"]
    assert "traces as depthwise" in reasons["multiplier"]
    assert "grouped.0 (8 channels) not pruned: grouped conv multiplier" in caplog.text
    assert all(isinstance(e, ExcludedGroup) and e.convs for e in pruner.excluded)


def test_model_whose_only_groups_are_excluded_says_why() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.Conv2d(8, 4, 1, groups=4), nn.Flatten(), nn.LazyLinear(2)
    )
    model(X)
    with pytest.raises(IAPruneError, match="no prunable conv.*excluded: 0 .*traces as depthwise"):
        find_groups(model, X[:1])


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        ({"stem.0": 0}, "keep 0 outside 1..16"),
        ({"stem.0": 17}, "keep 17 outside 1..16"),
        ({"stem.0": 6}, "keep 6 is not a multiple of 4"),
        ({"stem.0": 2.5}, "not a whole number"),
        ({"nope": 4}, "unknown channel group 'nope'; valid: stem.0, grouped_pw, pw.0"),
    ],
)
def test_invalid_keep_counts_raise_one_line(keep: dict[str, float], message: str) -> None:
    pruner = Pruner(build("grouped4", 3, seed=0), X[:1])
    with pytest.raises(IAPruneError, match=message) as info:
        pruner.prune(keep)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_excluded_group_cannot_be_pruned() -> None:
    model = build("grouped_edge", 3, seed=0)
    with pytest.raises(IAPruneError, match="'branch_a' cannot be pruned: grouped conv grouped.0"):
        Pruner(model, X[:1]).prune({"branch_a": 3})
    spec = PruningSpec(keep={"branch_a": 3}, original={"branch_a": 6})
    with pytest.raises(IAPruneError, match="cannot be pruned"):
        apply_spec(model, X[:1], spec)


def test_apply_spec_rejects_counts_and_indices_a_grouped_conv_cannot_take() -> None:
    model = build("grouped4", 3, seed=0)
    original = {"stem.0": 16, "grouped_pw": 24, "pw.0": 12}
    with pytest.raises(IAPruneError, match="keep 6 is not a multiple of 4"):
        apply_spec(model, X[:1], PruningSpec(keep={"stem.0": 6}, original=original))
    lopsided = PruningSpec(
        keep={"stem.0": 8}, original=original, kept_indices={"stem.0": list(range(8))}
    )
    with pytest.raises(IAPruneError, match="differ between the 4 slices"):
        apply_spec(model, X[:1], lopsided)


def test_grouped_spec_without_indices_rebuilds_the_architecture() -> None:
    model = build("grouped4", 3, seed=0)
    pruner = Pruner(model, X[:1])
    spec = pruner.spec({"stem.0": 8, "grouped_pw": 12, "pw.0": 5})
    pruned = pruner.prune(spec).eval()
    shape_only = PruningSpec.from_dict({"keep": spec.keep, "original": spec.original})
    rebuilt = apply_spec(model, X[:1], shape_only).eval()
    rebuilt.load_state_dict(pruned.state_dict())
    torch.testing.assert_close(rebuilt(X), pruned(X))


@pytest.mark.parametrize("name", sorted(NETS))
def test_smallest_allowed_model_has_no_empty_layer(name: str) -> None:
    """Every group at its smallest allowed width (what --round-to 1 reaches)."""
    model = build(name, 1, seed=0)
    x = torch.randn(2, 1, 28, 28)
    pruner = Pruner(model, x[:1])
    pruned = pruner.prune({g.name: g.multiple for g in pruner.groups}).eval()
    assert all(p.numel() > 0 for p in pruned.parameters())
    assert pruned(x).shape == model(x).shape


def test_group_norm_keeps_the_same_count_in_each_of_its_groups() -> None:
    """GroupNorm(4, 16) cannot take 6 channels; 8 must be 2 from each of its 4 groups."""
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3), nn.GroupNorm(4, 16), nn.ReLU(), nn.Conv2d(16, 8, 3),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2),
    ).eval()  # fmt: skip
    pruner = Pruner(model, X[:1])
    assert [(g.name, g.multiple) for g in pruner.groups] == [("0", 4), ("3", 1)]
    assert list(pruner.groups[0].allowed_keeps()) == [4, 8, 12, 16]
    with pytest.raises(IAPruneError, match="keep 6 is not a multiple of 4"):
        pruner.prune({"0": 6})
    spec = pruner.spec({"0": 8})
    assert [sum(i // 4 == j for i in spec.kept_indices["0"]) for j in range(4)] == [2, 2, 2, 2]
    assert pruner.prune(spec).eval()(X).shape == (2, 2)
