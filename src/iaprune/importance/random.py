"""Random scores: the control every criterion should beat."""

from __future__ import annotations

import torch
from torch import nn

from iaprune.importance._base import IMPORTANCES, Importance, _filters


@IMPORTANCES.register("random")
class RandomImportance(Importance):
    """Uniform random scores from a seeded generator."""

    uses_seed = True

    def __init__(self, *, seed: int = 0) -> None:
        self._gen = torch.Generator().manual_seed(seed)

    def score(self, module: nn.Module) -> torch.Tensor | None:
        w = _filters(module)
        return None if w is None else torch.rand(w.shape[0], generator=self._gen)
