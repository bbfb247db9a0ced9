"""Training a baseline and fine-tuning a pruned model: SGD + momentum, cosine LR."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from iaprune.config import FinetuneConfig
from iaprune.errors import IAPruneError
from iaprune.train.checkpoint import save_atomic
from iaprune.train.loop import NaNLossError, evaluate, train_epoch

log = logging.getLogger(__name__)


@dataclass
class TrainHistory:
    """Per-epoch training loss and validation metrics."""

    epochs: list[dict[str, float]] = field(default_factory=list)

    def best(self) -> dict[str, float] | None:
        """Epoch with the highest validation top-1."""
        return max(self.epochs, key=lambda e: e["val_top1"], default=None)


def finetune(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    config: FinetuneConfig,
    *,
    checkpoint: str | Path | None = None,
    desc: str = "finetune",
) -> TrainHistory:
    """Train ``model`` in place for ``config.epochs`` epochs; keep the best-on-validation weights.

    After each epoch the weights with the best validation accuracy so far are saved
    atomically to ``checkpoint``. A NaN/inf loss stops training, restores the last good
    weights (so the checkpoint stays valid) and raises :class:`IAPruneError`.
    """
    history = TrainHistory()
    if config.epochs <= 0:
        return history
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.momentum > 0,
    )
    steps = config.epochs * len(train_loader)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    best_state = copy.deepcopy(model.state_dict())
    best_acc = -1.0
    for epoch in range(config.epochs):
        try:
            loss = train_epoch(
                model,
                train_loader,
                optimizer,
                scheduler=scheduler,
                label_smoothing=config.label_smoothing,
                desc=f"{desc} {epoch + 1}/{config.epochs}",
            )
        except NaNLossError as exc:
            model.load_state_dict(best_state)
            where = f"; last good weights kept in {checkpoint}" if checkpoint else ""
            raise IAPruneError(f"{desc} stopped at epoch {epoch + 1}: {exc}{where}") from exc
        metrics = evaluate(model, val_loader, desc="validate")
        history.epochs.append(
            {
                "epoch": epoch + 1,
                "train_loss": loss,
                "val_top1": metrics["top1"],
                "val_loss": metrics["loss"],
            }
        )
        log.info("%s epoch %d: loss %.4f val top1 %.4f", desc, epoch + 1, loss, metrics["top1"])
        if metrics["top1"] > best_acc:
            best_acc = metrics["top1"]
            best_state = copy.deepcopy(model.state_dict())
            if checkpoint is not None:
                save_atomic({"state_dict": best_state, "epoch": epoch + 1}, checkpoint)
    model.load_state_dict(best_state)
    return history
