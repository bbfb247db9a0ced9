"""First-order Taylor criterion (Molchanov et al. 2019): |sum_w w * dL/dw| per filter."""

from __future__ import annotations

import torch
from torch import nn

from iaprune.devices import model_device
from iaprune.importance._base import IMPORTANCES, Importance, _filters
from iaprune.inference import train_mode


@IMPORTANCES.register("taylor")
class TaylorImportance(Importance):
    """Estimated loss change when a filter is removed; needs accumulated gradients."""

    needs_gradients = True

    def score(self, module: nn.Module) -> torch.Tensor | None:
        w = _filters(module)
        if w is None:
            return None
        grad = module.get_parameter("weight").grad
        if grad is None:
            raise RuntimeError("taylor importance needs gradients; run accumulate_gradients first")
        return (w * grad.detach().flatten(1)).sum(1).abs()


def accumulate_gradients(
    model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]
) -> None:
    """Zero the gradients, then back-propagate cross-entropy over ``batches`` (train mode)."""
    model.zero_grad(set_to_none=True)
    device = model_device(model)
    with train_mode(model):
        for x, y in batches:
            nn.functional.cross_entropy(model(x.to(device)), y.to(device)).backward()
