"""Running a model without changing it: temporary train/eval mode, and its dtype.

A low, torch-only module: the cost package, model conversion (:mod:`iaprune.convert`)
and export all use it, so none of them has to import another's internals.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
from torch import nn

__all__ = ["eval_mode", "model_dtype", "train_mode"]


def model_dtype(model: nn.Module) -> torch.dtype:
    """Floating dtype of the first floating parameter of ``model``; float32 otherwise."""
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


@contextmanager
def train_mode(model: nn.Module, mode: bool = True) -> Iterator[nn.Module]:
    """``model.train(mode)`` for the ``with`` body; each submodule's own flag restored after.

    The one save/restore of training flags: every temporary switch to train or eval mode
    (tracing, BatchNorm recalibration, evaluation, gradients for filter scores) uses it.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.train(mode)
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag


def eval_mode(model: nn.Module) -> AbstractContextManager[nn.Module]:
    """Put every submodule in eval mode and restore each one's own ``training`` flag after."""
    return train_mode(model, False)
