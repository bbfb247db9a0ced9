"""Running a model for inference without changing it: temporary eval mode and its dtype.

A low, torch-only module: the cost package, model conversion (:mod:`iaprune.convert`)
and export all use it, so none of them has to import another's internals.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["eval_mode", "model_dtype"]


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
