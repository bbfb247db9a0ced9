"""Search space: one float keep-ratio per channel group <-> kept filter counts.

Float parameters keep Optuna's GP sampler fast (about 50 ms per trial); integer
parameters cost 1.6-11 s per trial of sampler overhead. Ratios are turned into
channel counts inside the objective, rounded to hardware-friendly multiples of
``round_to`` (ONNX Runtime ran 63 or 65 channels ~2x slower per MAC than 64). A group's
allowed widths are the multiples of ``round_to`` between its minimum and its width, plus
the width itself, so rounding never exceeds the original or goes below the minimum.
Budgets are checked on the rounded counts, so rounding cannot break a budget either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import optuna

from iaprune.pruning.groups import ChannelGroup


@dataclass(frozen=True)
class SearchSpace:
    """Keep-ratio bounds per channel group; ``min_keep`` filters are always kept."""

    groups: tuple[ChannelGroup, ...]
    min_ratio: float = 0.05
    min_keep: int = 1
    round_to: int = 1

    @classmethod
    def from_groups(
        cls,
        groups: Sequence[ChannelGroup],
        *,
        min_ratio: float = 0.05,
        min_keep: int = 1,
        round_to: int = 1,
    ) -> SearchSpace:
        """Build a space over ``groups``."""
        return cls(tuple(groups), min_ratio, min_keep, round_to)

    def param_name(self, group: ChannelGroup) -> str:
        """Optuna parameter name of a group."""
        return f"r:{group.name}"

    def step(self, group: ChannelGroup) -> int:
        """Width granularity of ``group``: ``round_to`` and the group's own multiple (grouped
        convs keep equal counts per conv-group), whichever is coarser, as their lcm."""
        return math.lcm(self.round_to, group.multiple)

    def lower(self, group: ChannelGroup) -> int:
        """Fewest filters ``group`` may keep (never zero, never above its width)."""
        least = max(self.min_keep, math.ceil(self.min_ratio * group.channels))
        step = self.step(group)
        return min(group.channels, math.ceil(least / step) * step)

    def count(self, group: ChannelGroup, ratio: float) -> int:
        """Kept filters nearest to ``ratio`` of the width among the allowed widths."""
        target = ratio * group.channels
        lo = self.lower(group)
        if target >= group.channels:
            return group.channels
        step = self.step(group)
        below = max(lo, math.floor(target / step) * step)
        above = min(group.channels, max(lo, below + step))
        return below if target - below <= above - target else above

    def suggest(self, trial: optuna.Trial) -> dict[str, int]:
        """Sample one ratio per group and return kept counts."""
        return self.counts(
            {
                g.name: trial.suggest_float(self.param_name(g), self.min_ratio, 1.0)
                for g in self.groups
            }
        )

    def counts(self, ratios: Mapping[str, float]) -> dict[str, int]:
        """Kept counts for ``{group: ratio}`` (missing groups keep everything)."""
        return {g.name: self.count(g, ratios.get(g.name, 1.0)) for g in self.groups}

    def uniform(self, ratio: float) -> dict[str, int]:
        """The same keep-ratio for every group."""
        return {g.name: self.count(g, ratio) for g in self.groups}

    def params_for(self, ratio: float) -> dict[str, float]:
        """Optuna params giving the same ratio to every group (for enqueued trials)."""
        return {self.param_name(g): max(self.min_ratio, min(1.0, ratio)) for g in self.groups}

    def smallest(self) -> dict[str, int]:
        """Counts of the smallest allowed model."""
        return {g.name: self.lower(g) for g in self.groups}
