"""Small helpers shared by the static and measured cost functions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from iaprune.errors import IAPruneError


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """Validate a per-sample input shape such as ``(3, 32, 32)`` and return it as a tuple."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise IAPruneError(f"input shape must be a sequence of ints, got {input_shape!r}") from None
    if not shape or any(d <= 0 for d in shape):
        raise IAPruneError(f"input shape must be non-empty positive ints, got {input_shape!r}")
    return shape


def model_dtype(model: nn.Module) -> torch.dtype:
    """Floating dtype of the first floating parameter of ``model``; float32 otherwise."""
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode and restore each one's own ``training`` flag after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag
