"""One training epoch and evaluation (top-1, and top-5 when there are more than 10 classes)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from iaprune.devices import model_device
from iaprune.inference import eval_mode
from iaprune.progress import progress


class NaNLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def train_epoch(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    label_smoothing: float = 0.0,
    max_steps: int | None = None,
    desc: str = "train",
) -> float:
    """Train for one pass over ``loader`` (or ``max_steps`` batches); return the mean loss.

    Batches are moved to the model's device, so a model on a GPU trains there.

    Raises :class:`NaNLossError` as soon as a loss is not finite, before the step.
    """
    model.train()
    device = model_device(model)
    total, count = 0.0, 0
    for step, (x, y) in enumerate(progress(loader, desc=desc)):
        if max_steps is not None and step >= max_steps:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = nn.functional.cross_entropy(model(x), y, label_smoothing=label_smoothing)
        if not math.isfinite(loss.item()):
            raise NaNLossError(f"loss became {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.item() * len(y)
        count += len(y)
    return total / max(count, 1)


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], *, desc: str = "eval"
) -> dict[str, float]:
    """Return ``{"top1": .., "loss": ..}`` and ``"top5"`` when the model has > 10 classes."""
    correct1 = correct5 = 0
    loss_sum, n = 0.0, 0
    classes = 0
    device = model_device(model)
    with eval_mode(model):
        for x, y in progress(loader, desc=desc):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x)
            classes = logits.shape[1]
            loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
            top = logits.topk(min(5, classes), dim=1).indices
            correct1 += (top[:, 0] == y).sum().item()
            correct5 += (top == y[:, None]).any(1).sum().item()
            n += len(y)
    out = {"top1": correct1 / max(n, 1), "loss": loss_sum / max(n, 1)}
    if classes > 10:
        out["top5"] = correct5 / max(n, 1)
    return out
