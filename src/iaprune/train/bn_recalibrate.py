"""Re-estimate BatchNorm running statistics of a pruned model (cheap candidate evaluation)."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

import torch
from torch import nn

from iaprune.devices import model_device
from iaprune.inference import train_mode


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *, steps: int = 10
) -> nn.Module:
    """Reset BN statistics and recompute them as a cumulative average over ``steps`` batches.

    This is the adaptive-BN step EagleEye showed makes pruned candidates comparable
    without fine-tuning. Models without BatchNorm are returned unchanged.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model
    saved = [(m, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    device = model_device(model)
    try:
        with train_mode(model):
            for x, _ in islice(batches, steps):
                model(x.to(device))
    finally:
        for m, momentum in saved:
            m.momentum = momentum
    return model
