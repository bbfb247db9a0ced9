"""Small helpers shared by the static and measured cost functions."""

from __future__ import annotations

from collections.abc import Sequence

from iaprune.errors import IAPruneError
from iaprune.inference import eval_mode, model_dtype

__all__ = ["check_input_shape", "eval_mode", "model_dtype"]


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """Validate a per-sample input shape such as ``(3, 32, 32)`` and return it as a tuple."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise IAPruneError(f"input shape must be a sequence of ints, got {input_shape!r}") from None
    if not shape or any(d <= 0 for d in shape):
        raise IAPruneError(f"input shape must be non-empty positive ints, got {input_shape!r}")
    return shape
