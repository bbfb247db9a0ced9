"""Filter importance: one score per output channel of a conv (or BN) layer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import nn

from iaprune._registry import Registry


class Importance(ABC):
    """Scores the output channels (filters) of one layer; higher means keep.

    The pruner calls :meth:`score` once for every conv and BatchNorm layer whose
    output channels belong to a prunable channel group, on the *unpruned* model.
    When :attr:`needs_gradients` is true the pruner first back-propagates a few
    training batches, so ``module.weight.grad`` holds the accumulated gradient.
    Returning ``None`` means "this layer does not contribute to the score".
    """

    needs_gradients: ClassVar[bool] = False

    @abstractmethod
    def score(self, module: nn.Module) -> torch.Tensor | None:
        """Return a 1-D tensor with one non-negative score per output channel."""


IMPORTANCES: Registry[type[Importance]] = Registry("importance")
"""Filter-importance criteria by name (``--importance``); see :class:`Importance`."""


def create_importance(name: str, *, seed: int = 0) -> Importance:
    """Instantiate the importance registered as ``name`` (``seed`` is used by ``random``)."""
    cls = IMPORTANCES.get(name)
    if getattr(cls, "uses_seed", False):
        return cls(seed=seed)  # type: ignore[call-arg]  # seeded importances take a seed
    return cls()


def list_importances() -> list[str]:
    """Names of the registered importance criteria."""
    return IMPORTANCES.names()


def _filters(module: nn.Module) -> torch.Tensor | None:
    """Conv weight flattened to (out_channels, -1), or None for other layers."""
    if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
        return module.weight.detach().flatten(1)
    return None
