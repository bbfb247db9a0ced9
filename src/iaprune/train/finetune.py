"""Training a baseline and fine-tuning a pruned model: SGD + momentum, cosine LR.

With a ``checkpoint`` path, the training state (best and current weights, optimizer,
scheduler, epoch, history) is saved atomically after every epoch, and a later call with
the same path and ``tag`` continues from the last finished epoch. More epochs or a new
learning rate on resume re-stretch the cosine schedule from where it stopped.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass
class _State:
    """What a resumed training needs besides the live model/optimizer/scheduler."""

    best_state: dict[str, torch.Tensor]
    best_acc: float = -1.0
    history: TrainHistory = field(default_factory=TrainHistory)


def finetune(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    config: FinetuneConfig,
    *,
    checkpoint: str | Path | None = None,
    tag: Any = None,
    desc: str = "finetune",
) -> TrainHistory:
    """Train ``model`` in place for ``config.epochs`` epochs; keep the best-on-validation weights.

    After each epoch the training state is saved atomically to ``checkpoint`` (its
    ``state_dict`` holds the best weights so far) and training resumes from it when it
    exists and was saved with the same ``tag``. A NaN/inf loss stops training, restores
    the last good weights and raises :class:`IAPruneError`.
    """
    if config.epochs <= 0:
        return TrainHistory()
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.momentum > 0,
    )
    steps = max(config.epochs * len(train_loader), 1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    state = _State(copy.deepcopy(model.state_dict()))
    if checkpoint is not None:
        state = _resume(Path(checkpoint), tag, model, optimizer, scheduler, config, steps) or state
    for epoch in range(len(state.history.epochs), config.epochs):
        _one_epoch(
            model,
            train_loader,
            val_loader,
            optimizer,
            scheduler,
            config,
            state,
            epoch,
            desc,
            checkpoint,
        )
        if checkpoint is not None:
            _save(Path(checkpoint), tag, model, optimizer, scheduler, state)
    model.load_state_dict(state.best_state)
    return state.history


def _one_epoch(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: FinetuneConfig,
    state: _State,
    epoch: int,
    desc: str,
    checkpoint: str | Path | None,
) -> None:
    """Train one epoch, validate, and update the best weights in ``state``."""
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
        model.load_state_dict(state.best_state)
        raise IAPruneError(
            f"{desc} stopped at epoch {epoch + 1}: {exc}{_kept(checkpoint)}"
        ) from exc
    metrics = evaluate(model, val_loader, desc="validate")
    state.history.epochs.append(
        {
            "epoch": epoch + 1,
            "train_loss": loss,
            "val_top1": metrics["top1"],
            "val_loss": metrics["loss"],
        }
    )
    log.info(
        "%s epoch %d/%d: loss %.4f val top1 %.4f",
        desc,
        epoch + 1,
        config.epochs,
        loss,
        metrics["top1"],
    )
    if metrics["top1"] > state.best_acc:
        state.best_acc = metrics["top1"]
        state.best_state = copy.deepcopy(model.state_dict())


def _kept(checkpoint: str | Path | None) -> str:
    """Where the last good weights are, for the NaN message (only if a file was written)."""
    if checkpoint is not None and Path(checkpoint).is_file():
        return f"; last good weights kept in {checkpoint} (resume, e.g. with a lower --lr)"
    return "; no epoch finished, so no weights were saved (retry with a lower --lr)"


def _save(
    path: Path,
    tag: Any,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: _State,
) -> None:
    """Write the in-progress training state (``state_dict`` = best weights so far)."""
    save_atomic(
        {
            "state_dict": state.best_state,
            "epoch": len(state.history.epochs),
            "tag": tag,
            "current": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "best_acc": state.best_acc,
            "history": state.history.epochs,
        },
        path,
    )


def _resume(
    path: Path,
    tag: Any,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.CosineAnnealingLR,
    config: FinetuneConfig,
    steps: int,
) -> _State | None:
    """Load a saved training state into the live objects; None when there is none to use."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or "current" not in saved or saved.get("tag") != tag:
            log.info("%s is from another training; starting afresh", path)
            return None
        model.load_state_dict(saved["current"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
    except Exception as exc:  # unreadable or foreign file: start again rather than fail
        log.warning("cannot resume from %s (%s); starting afresh", path, exc)
        return None
    _restretch(optimizer, scheduler, config.lr, steps)
    log.info("resuming from %s after epoch %d", path, saved["epoch"])
    return _State(saved["state_dict"], float(saved["best_acc"]), TrainHistory(saved["history"]))


def _restretch(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.CosineAnnealingLR,
    lr: float,
    steps: int,
) -> None:
    """Cosine schedule over ``steps`` from base ``lr``, continued at the saved step."""
    scheduler.T_max = steps
    scheduler.base_lrs = [lr for _ in optimizer.param_groups]
    t = min(scheduler.last_epoch, steps)
    current = scheduler.eta_min + (lr - scheduler.eta_min) * (1 + math.cos(math.pi * t / steps)) / 2
    for group in optimizer.param_groups:
        group["initial_lr"] = lr
        group["lr"] = current
    scheduler._last_lr = [current for _ in optimizer.param_groups]  # noqa: SLF001
