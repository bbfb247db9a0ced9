"""Weight-norm criteria: L1 (Li et al. 2017, the paper's family) and L2."""

from __future__ import annotations

import torch
from torch import nn

from iaprune.importance._base import IMPORTANCES, Importance, _filters


@IMPORTANCES.register("l1")
class L1Importance(Importance):
    """Sum of absolute filter weights."""

    def score(self, module: nn.Module) -> torch.Tensor | None:
        w = _filters(module)
        return None if w is None else w.abs().sum(1)


@IMPORTANCES.register("l2")
class L2Importance(Importance):
    """Euclidean norm of each filter."""

    def score(self, module: nn.Module) -> torch.Tensor | None:
        w = _filters(module)
        return None if w is None else w.norm(p=2, dim=1)
