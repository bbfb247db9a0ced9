"""Search space: one float keep-ratio per channel group <-> kept filter counts.

Float parameters keep Optuna's GP sampler fast (about 50 ms per trial); integer
parameters cost 1.6-11 s per trial of sampler overhead. Ratios are turned into
channel counts inside the objective.
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

    @classmethod
    def from_groups(
        cls, groups: Sequence[ChannelGroup], *, min_ratio: float = 0.05, min_keep: int = 1
    ) -> SearchSpace:
        """Build a space over ``groups``."""
        return cls(tuple(groups), min_ratio, min_keep)

    def param_name(self, group: ChannelGroup) -> str:
        """Optuna parameter name of a group."""
        return f"r:{group.name}"

    def lower(self, group: ChannelGroup) -> int:
        """Fewest filters ``group`` may keep (never zero, never above its width)."""
        return min(group.channels, max(self.min_keep, math.ceil(self.min_ratio * group.channels)))

    def count(self, group: ChannelGroup, ratio: float) -> int:
        """Kept filters for ``ratio`` of the group's width, clamped to the allowed range."""
        return min(group.channels, max(self.lower(group), round(ratio * group.channels)))

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
