"""Keep-ratio <-> channel-count mapping."""

from __future__ import annotations

from iaprune.pruning.groups import ChannelGroup
from iaprune.search import SearchSpace

GROUPS = (ChannelGroup("a", 64, ("a",), ()), ChannelGroup("b", 10, ("b",), ()))


def test_counts_are_clamped_between_minimum_and_width() -> None:
    space = SearchSpace.from_groups(GROUPS, min_ratio=0.25, min_keep=4)
    assert space.counts({"a": 0.0, "b": 0.0}) == {"a": 16, "b": 4}
    assert space.counts({"a": 2.0, "b": 1.0}) == {"a": 64, "b": 10}
    assert space.counts({"a": 0.5}) == {"a": 32, "b": 10}


def test_min_keep_never_exceeds_width() -> None:
    space = SearchSpace.from_groups(GROUPS, min_ratio=0.05, min_keep=100)
    assert space.smallest() == {"a": 64, "b": 10}


def test_uniform_uses_one_ratio() -> None:
    space = SearchSpace.from_groups(GROUPS)
    assert space.uniform(0.5) == {"a": 32, "b": 5}


def test_round_to_gives_multiples_within_bounds() -> None:
    groups = (
        ChannelGroup("a", 64, ("a",), ()),
        ChannelGroup("b", 20, ("b",), ()),
        ChannelGroup("c", 6, ("c",), ()),
    )
    space = SearchSpace.from_groups(groups, min_ratio=0.05, min_keep=1, round_to=8)
    for step in range(101):
        counts = space.counts({g.name: step / 100 for g in groups})
        for g in groups:
            k = counts[g.name]
            assert space.lower(g) <= k <= g.channels
            assert k % 8 == 0 or k == g.channels
    assert space.counts({"a": 0.5, "b": 0.5, "c": 0.5}) == {"a": 32, "b": 8, "c": 6}
    assert space.counts({"b": 0.95}) == {"a": 64, "b": 20, "c": 6}
    assert space.smallest() == {"a": 8, "b": 8, "c": 6}
