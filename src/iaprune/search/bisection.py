"""The one bisection of the search: the largest scale (ratio, threshold) that still fits."""

from __future__ import annotations

from collections.abc import Callable


def bisect(ok: Callable[[float], bool], lo: float, hi: float, steps: int) -> tuple[float, float]:
    """Narrow ``[lo, hi]`` by ``steps`` halvings, keeping ``ok(lo)`` true and ``ok(hi)`` false.

    ``ok`` must be monotone (true below some point, false above it); returns the final
    ``(lo, hi)``. The callers check the ends themselves before bisecting.
    """
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo, hi
