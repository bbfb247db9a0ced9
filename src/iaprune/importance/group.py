"""Group criteria: a channel scored over every layer it touches (torch-pruning's groups).

A per-layer criterion sees a channel's filters only. Removing the channel also removes
the matching BatchNorm entries and the input weights that every consumer (the next
convs and linears, across residual adds and concats) reads from it; a group criterion
scores all of them. torch-pruning's dependency graph maps the consumers' input indices
back to the group's channels.
"""

from __future__ import annotations

from abc import abstractmethod

import torch
import torch_pruning as tp
from torch import nn

from iaprune.importance._base import IMPORTANCES, Importance


class GroupImportance(Importance):
    """Scores a whole channel group at once; :meth:`score` of a single layer is None.

    The pruner calls :meth:`score_group` with torch-pruning's dependency group of every
    prunable channel group (all of its channels), on the unpruned model.
    """

    def score(self, module: nn.Module) -> torch.Tensor | None:
        """None: a group criterion does not score layers alone."""
        return None

    @abstractmethod
    def score_group(self, group: tp.Group) -> torch.Tensor | None:
        """One non-negative score per channel of the group's root layer."""


@IMPORTANCES.register("group_l1")
class GroupL1Importance(GroupImportance):
    """Mean L1 norm over a channel's filters, norm scales and consumers' input weights.

    torch-pruning's :class:`~torch_pruning.importance.GroupMagnitudeImportance` with
    ``p=1`` (the pruner normalises the scores).
    """

    def __init__(self) -> None:
        self._impl = tp.importance.GroupMagnitudeImportance(p=1, normalizer=None)

    def score_group(self, group: tp.Group) -> torch.Tensor | None:
        scores = self._impl(group)
        if not isinstance(scores, torch.Tensor) or scores.numel() == 0:
            return None
        return scores.detach().float().abs()
