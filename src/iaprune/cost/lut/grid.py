"""Width grids of a latency table and the piecewise-linear interpolation between them."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from iaprune.errors import IAPruneError

__all__ = ["MAX_CORNER_BLOCKS", "channel_grid", "grid_ratios", "segment"]

MAX_CORNER_BLOCKS = 2
"""Groups up to this many vector blocks wide get grid points on both sides of each block."""


def grid_ratios(points: int, min_ratio: float = 0.05) -> list[float]:
    """``points`` evenly spaced keep-ratios from ``min_ratio`` to 1 (both included)."""
    if points < 1:
        raise IAPruneError(f"a latency grid needs >= 1 point per dimension, got {points}")
    if not 0 < min_ratio <= 1:
        raise IAPruneError(f"min_ratio must be in (0, 1], got {min_ratio}")
    if points == 1:
        return [1.0]
    step = (1.0 - min_ratio) / (points - 1)
    return [min_ratio + i * step for i in range(points - 1)] + [1.0]


def channel_grid(
    full: int,
    ratios: Sequence[float],
    *,
    multiple: int = 8,
    minimum: int = 1,
    strict: bool = False,
    vector: int = 1,
) -> list[int]:
    """Sorted distinct channel counts ``round(r * full)`` for ``r`` in ``ratios``, plus ``full``.

    When ``full >= multiple * len(ratios)`` (grid steps of at least ``multiple``),
    points below the full width are rounded to the nearest multiple of ``multiple``
    (SIMD-friendly widths, as a search with a channel step would pick). With ``strict``
    they are rounded whenever ``full >= multiple`` (at least one multiple; a coarser
    grid, but only widths a search rounding to ``multiple`` proposes). Every point is
    clamped to ``[minimum, full]``.

    ``vector``: the runtime's vector width (the backend's preferred multiple). When it is a
    multiple of ``multiple`` and larger, and the group is at most
    :data:`MAX_CORNER_BLOCKS` vectors wide, every multiple ``k * vector`` and the next
    step ``k * vector + multiple`` are grid points too: latency jumps between them (ONNX
    Runtime, resnet56 x0.375, batch 32: 16 of 24 channels cost 0.31 of the model, 18
    cost 0.45), and interpolation across the jump mispredicts.
    """
    if full < 1:
        raise ValueError(f"full width must be >= 1, got {full}")
    minimum = max(1, min(minimum, full))
    align = multiple > 1 and full >= multiple * (1 if strict else len(ratios))
    values = {full}
    for r in ratios:
        v = float(r) * full
        if align and r < 1 and (strict or round(v / multiple) >= 1):
            v = multiple * max(1, round(v / multiple))
        values.add(min(full, max(minimum, int(round(v)))))
    values |= _corners(full, multiple, vector, minimum)
    return sorted(values)


def _corners(full: int, multiple: int, vector: int, minimum: int) -> set[int]:
    """Both sides of every vector block of a narrow group (see :func:`channel_grid`)."""
    step = max(multiple, 1)
    if vector <= step or vector % step or full // vector > MAX_CORNER_BLOCKS:
        return set()
    edges = (k * vector + d for k in range(1, full // vector + 1) for d in (0, step))
    return {v for v in edges if minimum <= v <= full}


def segment(grid: Sequence[int], x: float) -> tuple[int, int, float]:
    """Indices ``i0, i1`` and weight ``w`` with ``value = (1 - w) v[i0] + w v[i1]``.

    Linear inside the grid (exact at its points) and linear extrapolation from the
    first or last segment outside it; a one-point grid is constant.
    """
    n = len(grid)
    if n == 1:
        return 0, 0, 0.0
    j = min(max(bisect.bisect_right(grid, x), 1), n - 1)
    lo, hi = grid[j - 1], grid[j]
    return j - 1, j, (x - lo) / (hi - lo)
