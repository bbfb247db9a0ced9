"""Fitting a latency table's prediction line: ``predict = scale * layer sum + offset``.

The line passes through the full-model point (the unpruned model is predicted exactly).
With calibration, ``N`` seeded random pruned models are timed and ``scale`` is the least
squares slope through that point; a slope outside :data:`SCALE_BOUNDS` means the timings
were noise and falls back to 1. A better predictor (per-stage offsets, a learned
correction) replaces this module.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn

from iaprune.cost.latency import LatencyResult
from iaprune.devices import model_device
from iaprune.inference import model_dtype
from iaprune.timing import TimingSettings

if TYPE_CHECKING:
    from iaprune.pruning.groups import ChannelGroup

__all__ = ["SCALE_BOUNDS", "Timer", "calibration_keeps", "fit_scale", "prune_to"]

log = logging.getLogger(__name__)

SCALE_BOUNDS = (0.5, 2.0)
"""Accepted range of the calibration scale; a fit outside it falls back to 1."""


class Timer(Protocol):
    """What fitting needs of a latency backend: :meth:`LatencyBackend.measure`."""

    def measure(
        self, model: nn.Module, input_shape: Sequence[int], settings: TimingSettings
    ) -> LatencyResult:
        """Time ``model``."""
        ...


def calibration_keeps(
    groups: Sequence[ChannelGroup], n: int, min_ratio: float, seed: int
) -> list[dict[str, int]]:
    """``n`` seeded random configurations; each group keeps a ratio in ``[min_ratio, 1]``."""
    rng = random.Random(seed + 1)
    return [
        {g.name: max(1, round(g.channels * rng.uniform(min_ratio, 1.0))) for g in groups}
        for _ in range(n)
    ]


def prune_to(
    model: nn.Module,
    shape: tuple[int, ...],
    groups: Sequence[ChannelGroup],
    keep: dict[str, int],
) -> nn.Module:
    """A pruned copy of ``model`` keeping ``keep[g]`` filters of every group ``g``."""
    from iaprune.pruning.spec import PruningSpec
    from iaprune.pruning.surgery import apply_spec

    example = torch.zeros((1, *shape), device=model_device(model), dtype=model_dtype(model))
    original = {g.name: g.channels for g in groups}
    return apply_spec(model, example, PruningSpec(keep=keep, original=original))


def fit_scale(points: Sequence[tuple[float, float]], full_sum: float, full_ms: float) -> float:
    """Least-squares slope of ``(layer sum, measured ms)`` points through the full-model point.

    Returns 1 without points (or when they do not vary) and when the slope is not finite
    or outside :data:`SCALE_BOUNDS` (a warning is logged).
    """
    dx = [s - full_sum for s, _ in points]
    dy = [m - full_ms for _, m in points]
    denom = sum(d * d for d in dx)
    scale = sum(a * b for a, b in zip(dx, dy, strict=True)) / denom if denom > 0 else 1.0
    if not math.isfinite(scale) or not SCALE_BOUNDS[0] <= scale <= SCALE_BOUNDS[1]:
        # a scale this far from 1 means the calibration timings were noise (a busy
        # machine): trusting it can predict negative latencies for small models
        log.warning(
            "latency table calibration gave scale %s (outside %s); using 1", scale, SCALE_BOUNDS
        )
        scale = 1.0
    return scale
