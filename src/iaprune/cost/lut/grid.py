"""Width grids of a latency table and the piecewise-linear interpolation between them."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from iaprune.errors import IAPruneError

__all__ = ["channel_grid", "grid_ratios", "segment"]


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
) -> list[int]:
    """Sorted distinct channel counts ``round(r * full)`` for ``r`` in ``ratios``, plus ``full``.

    When ``full >= multiple * len(ratios)`` (grid steps of at least ``multiple``),
    points below the full width are rounded to the nearest multiple of ``multiple``
    (SIMD-friendly widths, as a search with a channel step would pick). With ``strict``
    they are rounded whenever ``full >= multiple`` (at least one multiple; a coarser
    grid, but only widths a search rounding to ``multiple`` proposes). Every point is
    clamped to ``[minimum, full]``.
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
    return sorted(values)


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
