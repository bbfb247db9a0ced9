"""The model registry: every architecture in the zoo is created by name."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

from torch import nn

from iaprune._registry import Registry
from iaprune.errors import IAPruneError


class ModelFactory(Protocol):
    """A callable building a freshly initialised model from keyword-only arguments."""

    def __call__(self, *, num_classes: int, in_channels: int, width_mult: float) -> nn.Module:
        """Build the model."""
        ...


MODELS: Registry[ModelFactory] = Registry("model")
"""The model zoo by name (``--model``); add one with :func:`register_model`."""


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering a model factory under ``name``.

    The factory must accept the keyword-only arguments ``num_classes``,
    ``in_channels`` and ``width_mult`` and return an :class:`torch.nn.Module`.
    """
    return MODELS.register(name)


def scaled_channels(base: int, width_mult: float) -> int:
    """Channel width ``max(1, round(base * width_mult))`` used by every model."""
    return max(1, round(base * width_mult))


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise IAPruneError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise IAPruneError(f"{name} must be >= 1, got {value}")
    return value


def create_model(
    name: str, *, num_classes: int = 10, in_channels: int = 3, width_mult: float = 1.0
) -> nn.Module:
    """Create the model registered as ``name`` with freshly initialised weights.

    Args:
        name: a registered model name (see :func:`list_models`).
        num_classes: number of output logits, >= 1.
        in_channels: number of input image channels (1 for grey-scale), >= 1.
        width_mult: multiplier applied to every hidden channel/feature width;
            each width becomes ``max(1, round(base * width_mult))``.

    Raises:
        IAPruneError: for an unknown name (the message lists the valid ones) or
            an invalid argument.
    """
    factory = MODELS.get(name)
    _check_positive_int("num_classes", num_classes)
    _check_positive_int("in_channels", in_channels)
    if isinstance(width_mult, bool) or not isinstance(width_mult, int | float):
        raise IAPruneError(f"width_mult must be a number > 0, got {width_mult!r}")
    if not math.isfinite(width_mult) or width_mult <= 0:
        raise IAPruneError(f"width_mult must be a finite number > 0, got {width_mult!r}")
    return factory(num_classes=num_classes, in_channels=in_channels, width_mult=float(width_mult))


def list_models() -> list[str]:
    """Sorted names of all registered models."""
    return MODELS.names()
