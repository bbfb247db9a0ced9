"""Fitting a latency table's prediction: ``scale * layer sum + ms_per_gmac * GMACs + offset``.

Without calibration the line passes through the full-model point with ``scale = 1`` and no
MACs term (the unpruned model is predicted exactly). With a few calibration models (fewer
than :data:`MIN_FREE_FIT` points in all) ``scale`` is the least-squares slope through the
full-model point; a slope outside :data:`SCALE_BOUNDS` means the timings were noise and
falls back to 1.

With :data:`MIN_FREE_FIT` or more points (the full model and ``calibrate`` random pruned
models, each timed whole) the correction is fitted freely (:func:`fit_correction`):
non-negative ``scale`` and ``ms_per_gmac``, free ``offset``. Two features, because
stand-alone layer timings are biased in ways that depend on the runtime: ONNX Runtime
adds layout reorders and a session call to every stand-alone block (the layer sum
overestimates, most for small layers), while PyTorch's eager overhead per layer is
constant. The MACs term carries what the layer sum gets wrong in proportion to the work.
:func:`loo_errors` (leave-one-out) measures how well the fit predicts a model it has not
seen; the table stores it and the pipeline falls back to measuring when it is too large.
"""

from __future__ import annotations

import logging
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import nn

from iaprune.cost.latency import LatencyResult
from iaprune.devices import model_device
from iaprune.inference import model_dtype
from iaprune.timing import TimingSettings

if TYPE_CHECKING:
    from iaprune.pruning.groups import ChannelGroup

__all__ = [
    "CALIBRATION_DRAW",
    "MIN_FREE_FIT",
    "SCALE_BOUNDS",
    "Correction",
    "Timer",
    "aligned",
    "calibration_keeps",
    "fit_correction",
    "fit_scale",
    "loo_errors",
    "prune_to",
]

MIN_FREE_FIT = 5
"""Points (full model + calibration models) from which the correction is fitted freely."""

log = logging.getLogger(__name__)

SCALE_BOUNDS = (0.5, 2.0)
"""Accepted range of the calibration scale; a fit outside it falls back to 1."""

CALIBRATION_DRAW = "sizes"
"""How :func:`calibration_keeps` draws models, recorded in a table's meta: models of every
size (tables without it drew each group's ratio independently)."""

_SPREAD = math.log(1.5)
"""Log half-range of a calibration model's per-group ratios around its typical ratio."""


class Timer(Protocol):
    """What fitting needs of a latency backend: :meth:`LatencyBackend.measure`."""

    def measure(
        self, model: nn.Module, input_shape: Sequence[int], settings: TimingSettings
    ) -> LatencyResult:
        """Time ``model``."""
        ...


def calibration_keeps(
    groups: Sequence[ChannelGroup], n: int, min_ratio: float, seed: int, multiple: int = 1
) -> list[dict[str, int]]:
    """``n`` seeded random configurations of every size from ``min_ratio`` to 1.

    Model ``i`` draws a typical keep-ratio ``s`` in the ``i``-th of ``n`` equal strata of
    ``[min_ratio, 1]``, and each group keeps ``s`` times a factor in ``[1/1.5, 1.5]``
    (clipped to ``[min_ratio, 1]``). Ratios drawn per group independently would give
    models of about half the width only: a correction fitted on those extrapolates to
    the small models an aggressive budget selects (measured: ONNX Runtime, resnet56,
    every calibration model at 0.55-0.63 of the widths). Counts of groups at least
    ``multiple`` wide are rounded to multiples of it (the widths a search with that
    channel step proposes).
    """
    rng = random.Random(seed + 1)
    strata = [min_ratio + (1.0 - min_ratio) * (i + rng.random()) / n for i in range(n)]
    rng.shuffle(strata)
    keeps = []
    for s in strata:
        keep = {}
        for g in groups:
            ratio = min(1.0, max(min_ratio, s * math.exp(rng.uniform(-_SPREAD, _SPREAD))))
            keep[g.name] = aligned(g.channels * ratio, g.channels, multiple)
        keeps.append(keep)
    return keeps


def aligned(count: float, full: int, multiple: int) -> int:
    """``count`` rounded to a multiple of ``multiple`` within ``[multiple, full]``.

    Plain rounding (within ``[1, full]``) when ``multiple <= 1`` or the group is narrower
    than ``multiple``.
    """
    if multiple <= 1 or full < multiple:
        return max(1, min(full, round(count)))
    return max(multiple, min(full, multiple * round(count / multiple)))


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


@dataclass(frozen=True)
class Correction:
    """``predict = scale * layer_sum + ms_per_gmac * gmacs + offset_ms``."""

    scale: float
    ms_per_gmac: float
    offset_ms: float

    def __call__(self, layer_sum: float, gmacs: float) -> float:
        """The corrected prediction (ms) for a layer sum (ms) and MACs (10^9, one sample)."""
        return self.scale * layer_sum + self.ms_per_gmac * gmacs + self.offset_ms


def fit_correction(points: Sequence[tuple[float, float, float]]) -> Correction:
    """Least squares over ``(layer_sum_ms, gmacs, measured_ms)`` points, relative errors.

    Minimises the squared *relative* error (each row divided by its measurement, so a
    small model counts as much as a big one) with ``scale, ms_per_gmac >= 0`` and a free
    offset (non-negative least squares with the offset split in two signs).

    Raises:
        ValueError: fewer than 3 points.
    """
    if len(points) < 3:
        raise ValueError(f"need at least 3 points to fit a correction, got {len(points)}")
    from scipy.optimize import nnls  # lazy: scipy is slow to import

    arr = np.asarray(points, dtype=float)
    weight = 1.0 / arr[:, 2]
    design = np.stack([arr[:, 0], arr[:, 1], np.ones(len(arr)), -np.ones(len(arr))], axis=1)
    coef, _ = nnls(design * weight[:, None], arr[:, 2] * weight)
    return Correction(float(coef[0]), float(coef[1]), float(coef[2] - coef[3]))


def loo_errors(points: Sequence[tuple[float, float, float]]) -> list[float]:
    """Leave-one-out absolute percentage errors of :func:`fit_correction` on ``points``.

    Each point is predicted by the correction fitted on the others: how far off the table
    is on a model it has not seen. Empty with fewer than 4 points.
    """
    if len(points) < 4:
        return []
    errors = []
    for i, (layer_sum, gmacs, measured) in enumerate(points):
        fit = fit_correction([p for j, p in enumerate(points) if j != i])
        errors.append(abs(fit(layer_sum, gmacs) - measured) / measured * 100.0)
    return errors


def summarize_errors(errors: Sequence[float]) -> dict[str, float]:
    """``{"median_pct", "max_pct", "n"}`` of absolute percentage errors (empty: ``{}``)."""
    if not errors:
        return {}
    return {
        "median_pct": round(statistics.median(errors), 3),
        "max_pct": round(max(errors), 3),
        "n": len(errors),
    }
