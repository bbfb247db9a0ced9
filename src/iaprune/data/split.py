"""Seeded train/validation splits of the training indices."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from iaprune.errors import IAPruneError

__all__ = ["check_fraction", "split_indices"]


def check_fraction(value: object, name: str = "val_fraction") -> float:
    """Return ``value`` as a float strictly between 0 and 1 or raise :class:`IAPruneError`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IAPruneError(f"{name} must be a number in (0, 1), got {value!r}")
    v = float(value)
    if not math.isfinite(v) or not 0.0 < v < 1.0:
        raise IAPruneError(f"{name} must be in (0, 1), got {value!r}")
    return v


def split_indices(
    labels: Sequence[int] | np.ndarray,
    fraction: float,
    seed: int,
    *,
    stratify: bool = True,
    name: str = "val_fraction",
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(len(labels))`` into ``(keep, held_out)`` index arrays.

    ``held_out`` has ``round(fraction * n)`` elements (at least 1, at most
    ``n - 1``). With ``stratify`` every class contributes in proportion to its
    size (largest-remainder rounding, so the total is exact); otherwise the
    split is a plain random permutation. The result depends only on
    ``labels``, ``fraction`` and ``seed``; both arrays are sorted ``int64``.

    Raises:
        IAPruneError: if ``fraction`` is not in (0, 1) or there are too few
            samples to give both parts at least one element.
    """
    fraction = check_fraction(fraction, name)
    y = np.asarray(labels).reshape(-1)
    n = len(y)
    n_out = round(fraction * n)
    if n < 2 or n_out < 1 or n_out > n - 1:
        raise IAPruneError(
            f"{name}={fraction} leaves an empty split of {n} samples; "
            f"choose a fraction between {1 / max(n, 1):.3g} and {1 - 1 / max(n, 1):.3g}"
        )
    rng = np.random.default_rng(seed)
    if not stratify:
        perm = rng.permutation(n)
        held = perm[:n_out]
    else:
        classes, inverse = np.unique(y, return_inverse=True)
        counts = np.bincount(inverse, minlength=len(classes))
        quota = counts * (n_out / n)
        take = np.floor(quota).astype(np.int64)
        short = n_out - int(take.sum())
        if short > 0:
            # Largest remainders first; ties broken by the seeded RNG.
            order = np.lexsort((rng.random(len(classes)), -(quota - take)))
            take[order[:short]] += 1
        parts = []
        for c in range(len(classes)):
            members = np.flatnonzero(inverse == c)
            parts.append(rng.permutation(members)[: take[c]])
        held = np.concatenate(parts) if parts else np.empty(0, np.int64)
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    keep = np.flatnonzero(~mask).astype(np.int64)
    return keep, np.flatnonzero(mask).astype(np.int64)
