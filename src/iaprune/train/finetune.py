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
from iaprune.train import distributed
from iaprune.train.checkpoint import load_failure, save_atomic
from iaprune.train.distributed import DistContext
from iaprune.train.loop import NaNLossError, train_epoch
from iaprune.train.syncbn import synced_batchnorm

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


class _Trainer:
    """SGD + cosine schedule over ``config.epochs``, with a resumable state file."""

    def __init__(
        self,
        model: nn.Module,
        config: FinetuneConfig,
        steps: int,
        checkpoint: Path | None,
        tag: Any,
        desc: str,
        dist: DistContext,
    ) -> None:
        self.model, self.config, self.steps = model, config, steps
        self.checkpoint, self.tag, self.desc = checkpoint, tag, desc
        self.dist = dist
        self.train_model = distributed.wrap(model, dist)
        self.optimizer = torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.momentum > 0,
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=steps)
        self.state = _State(copy.deepcopy(model.state_dict()))

    def epoch(self, train_loader: DataLoader, val_loader: DataLoader, epoch: int) -> None:
        """Train one epoch, validate, keep the best weights, save the state."""
        distributed.set_epoch(train_loader, epoch)
        try:
            loss = train_epoch(
                self.train_model,
                train_loader,
                self.optimizer,
                scheduler=self.scheduler,
                label_smoothing=self.config.label_smoothing,
                desc=f"{self.desc} {epoch + 1}/{self.config.epochs}",
            )
        except NaNLossError as exc:
            self.model.load_state_dict(self.state.best_state)
            raise IAPruneError(
                f"{self.desc} stopped at epoch {epoch + 1}: {exc}{self._kept()}"
            ) from exc
        loss = distributed.mean(loss, self.dist)
        metrics = distributed.evaluate(self.model, val_loader, self.dist, desc="validate")
        self.state.history.epochs.append(
            {
                "epoch": epoch + 1,
                "train_loss": loss,
                "val_top1": metrics["top1"],
                "val_loss": metrics["loss"],
            }
        )
        log.info(
            "%s epoch %d/%d: loss %.4f val top1 %.4f",
            self.desc,
            epoch + 1,
            self.config.epochs,
            loss,
            metrics["top1"],
        )
        if metrics["top1"] > self.state.best_acc:
            self.state.best_acc = metrics["top1"]
            self.state.best_state = copy.deepcopy(self.model.state_dict())
        self.save()

    def _kept(self) -> str:
        """Where the last good weights are, for the NaN message (only if a file was written)."""
        if self.checkpoint is not None and self.checkpoint.is_file():
            return f"; last good weights kept in {self.checkpoint} (resume, e.g. with a lower --lr)"
        return "; no epoch finished, so no weights were saved (retry with a lower --lr)"

    def save(self) -> None:
        """Write the training state (``state_dict`` = best weights so far), if asked to.

        Under torchrun only rank 0 writes (every process holds the same state).
        """
        if self.checkpoint is None or not self.dist.main:
            return
        save_atomic(
            {
                "state_dict": self.state.best_state,
                "epoch": len(self.state.history.epochs),
                "tag": self.tag,
                "current": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "best_acc": self.state.best_acc,
                "history": self.state.history.epochs,
                "rng": _rng_state(),  # the next epoch's augmentation (and shuffle, if any)
            },
            self.checkpoint,
        )

    def resume(self) -> None:
        """Continue from a saved state with the same tag, if there is one."""
        path = self.checkpoint
        if path is None or not path.is_file():
            return
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            if (
                not isinstance(saved, dict)
                or "current" not in saved
                or saved.get("tag") != self.tag
            ):
                log.info("%s is from another training; starting afresh", path)
                return
            self.model.load_state_dict(saved["current"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            _set_rng_state(saved.get("rng"))  # resumed epochs draw as uninterrupted ones
        except Exception as exc:  # unreadable or foreign file: start again rather than fail
            log.warning("cannot resume from %s (%s); starting afresh", path, load_failure(exc))
            return
        self._restretch()
        log.info("%s: resuming from %s after epoch %d", self.desc, path, saved["epoch"])
        history = TrainHistory(saved["history"])
        self.state = _State(saved["state_dict"], float(saved["best_acc"]), history)

    def _restretch(self) -> None:
        """Cosine schedule over this run's steps and lr, continued at the saved step."""
        lr, steps, sched = self.config.lr, self.steps, self.scheduler
        sched.T_max = steps
        sched.base_lrs = [lr for _ in self.optimizer.param_groups]
        t = min(sched.last_epoch, steps)
        current = sched.eta_min + (lr - sched.eta_min) * (1 + math.cos(math.pi * t / steps)) / 2
        for group in self.optimizer.param_groups:
            group["initial_lr"] = lr
            group["lr"] = current
        sched._last_lr = [current for _ in self.optimizer.param_groups]  # noqa: SLF001


def finetune(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    config: FinetuneConfig,
    *,
    checkpoint: str | Path | None = None,
    tag: Any = None,
    desc: str = "finetune",
    dist: DistContext | None = None,
) -> TrainHistory:
    """Train ``model`` in place for ``config.epochs`` epochs; keep the best-on-validation weights.

    After each epoch the training state is saved atomically to ``checkpoint`` (its
    ``state_dict`` holds the best weights so far) and training resumes from it when it
    exists and was saved with the same ``tag``. A NaN/inf loss stops training, restores
    the last good weights and raises :class:`IAPruneError`.

    With ``dist`` (a torchrun job, see :mod:`iaprune.train.distributed`) the model trains
    in DistributedDataParallel on ``train_loader`` (from
    :func:`~iaprune.train.distributed.train_loader`), validation is sharded, and only
    rank 0 writes ``checkpoint``; with ``config.sync_bn`` BatchNorm uses the global
    batch's statistics (:func:`~iaprune.train.syncbn.synced_batchnorm`).
    """
    if config.epochs <= 0:
        return TrainHistory()
    steps = max(config.epochs * len(train_loader), 1)
    path = Path(checkpoint) if checkpoint is not None else None
    ctx = dist or DistContext()
    with synced_batchnorm(model, enabled=ctx.active and config.sync_bn):
        trainer = _Trainer(model, config, steps, path, tag, desc, ctx)
        trainer.resume()
        for epoch in range(len(trainer.state.history.epochs), config.epochs):
            trainer.epoch(train_loader, val_loader, epoch)
    model.load_state_dict(trainer.state.best_state)
    return trainer.state.history


def _rng_state() -> dict[str, Any]:
    """torch's CPU (and, when in use, CUDA) random state, as tensors a checkpoint can hold."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: object) -> None:
    """Restore what :func:`_rng_state` saved (nothing for checkpoints without it)."""
    if not isinstance(state, dict):
        return
    if isinstance(state.get("cpu"), torch.Tensor):
        torch.set_rng_state(state["cpu"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
