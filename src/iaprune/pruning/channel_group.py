"""A channel group and the keep counts and kept channels it allows (:class:`ChannelGroup`).

How groups are found, and why one is excluded, is :mod:`iaprune.pruning.groups`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from iaprune.errors import IAPruneError


@dataclass(frozen=True)
class ChannelGroup:
    """One independent channel group.

    ``name`` is the first (in module order) conv of the group; ``channels`` its width;
    ``convs`` every conv whose output channels belong to the group; ``norms`` the
    normalisation layers pruned with them; ``consumers`` the convs and linears whose
    *input* channels are these channels (what a latency table needs to know a layer's
    input width).

    ``multiple``: the allowed keep counts are ``multiple, 2 * multiple, ..., channels``
    (:meth:`allowed_keeps`; 1 for groups without grouped convs or GroupNorms, otherwise the
    least common multiple of their numbers of groups). ``channels`` is a multiple of it.
    """

    name: str
    channels: int
    convs: tuple[str, ...]
    norms: tuple[str, ...]
    consumers: tuple[str, ...] = ()
    multiple: int = 1

    def allowed_keeps(self) -> range:
        """Every keep count the group allows, smallest first."""
        return range(self.multiple, self.channels + 1, self.multiple)

    def allows(self, keep: int) -> bool:
        """Whether the group may keep ``keep`` filters."""
        return 1 <= keep <= self.channels and keep % self.multiple == 0

    def check_keep(self, keep: object) -> int:
        """``keep`` as an int; raises :class:`IAPruneError` when it is not allowed."""
        if isinstance(keep, bool) or not isinstance(keep, int | float) or keep != int(keep):
            raise IAPruneError(f"group {self.name!r}: keep {keep!r} is not a whole number")
        k = int(keep)
        if not 1 <= k <= self.channels:
            raise IAPruneError(f"group {self.name!r}: keep {k} outside 1..{self.channels}")
        if k % self.multiple:
            raise IAPruneError(
                f"group {self.name!r}: keep {k} is not a multiple of {self.multiple} "
                "(a grouped conv or GroupNorm needs the same count in each of its groups)"
            )
        return k

    def default_indices(self, keep: int) -> list[int]:
        """The first ``keep / multiple`` channels of each of the ``multiple`` slices."""
        chunk, per = self.channels // self.multiple, keep // self.multiple
        return [j * chunk + p for j in range(self.multiple) for p in range(per)]

    def top_indices(self, scores: torch.Tensor, keep: int) -> list[int]:
        """The ``keep`` best-scored channels, at the same positions in every slice."""
        chunk = self.channels // self.multiple
        per_slice = scores.detach().float().reshape(self.multiple, chunk).sum(0)
        positions = sorted(torch.topk(per_slice, keep // self.multiple).indices.tolist())
        return [j * chunk + p for j in range(self.multiple) for p in positions]

    def check_indices(self, indices: Sequence[int], keep: int) -> None:
        """Raise :class:`IAPruneError` unless ``indices`` are a valid kept set for ``keep``."""
        kept = sorted(int(i) for i in indices)
        if len(kept) != keep or len(set(kept)) != keep:
            raise IAPruneError(f"group {self.name!r}: {len(kept)} kept indices for keep={keep}")
        if kept and not 0 <= kept[0] <= kept[-1] < self.channels:
            raise IAPruneError(f"group {self.name!r}: kept indices outside 0..{self.channels - 1}")
        chunk = self.channels // self.multiple
        slices = {tuple(i % chunk for i in kept if i // chunk == j) for j in range(self.multiple)}
        if len(slices) != 1:
            raise IAPruneError(
                f"group {self.name!r}: kept indices differ between the {self.multiple} "
                "slices of a grouped conv"
            )


@dataclass(frozen=True)
class ExcludedGroup:
    """A channel group left at full width because pruning it would be wrong."""

    name: str
    channels: int
    convs: tuple[str, ...]
    reason: str

    def note(self) -> str:
        """One line for logs and reports."""
        return f"{self.name} ({self.channels} channels) not pruned: {self.reason}"
