"""BatchNorm scaling factor |gamma| (Network Slimming, Liu et al. 2017)."""

from __future__ import annotations

import torch
from torch import nn

from iaprune.importance._base import IMPORTANCES, Importance


@IMPORTANCES.register("bn_scale")
class BNScaleImportance(Importance):
    """|gamma| of the BatchNorm that follows a conv; convs without BN do not contribute."""

    def score(self, module: nn.Module) -> torch.Tensor | None:
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            return module.weight.detach().abs()
        return None
