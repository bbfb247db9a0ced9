"""Run by ``torchrun`` from test_distributed.py (and in-process for world size 1).

Trains a BatchNorm-free CNN on seeded synthetic data for 3 epochs: straight, and with a
crash at the start of epoch 3 followed by a resume from the checkpoint rank 0 wrote.
Rank 0 saves both final weights and histories.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from iaprune.config import FinetuneConfig
from iaprune.train import distributed, finetune


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    )


def data() -> tuple[DataLoader, DataLoader]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 1, 6, 6, generator=gen)
    y = (x.mean((1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 1).long()
    train = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=16)
    return train, DataLoader(TensorDataset(x[64:], y[64:]), batch_size=16)


class Crash(RuntimeError):
    """The simulated crash."""


class CrashingLoader(DataLoader):
    """Raises :class:`Crash` when its third epoch starts."""

    epochs = 0

    def __iter__(self):  # type: ignore[override]
        type(self).epochs += 1
        if type(self).epochs == 3:
            raise Crash
        return super().__iter__()


def main(out: Path) -> None:
    ctx, _ = distributed.init(torch.device("cpu"))
    train, val = data()
    loader = distributed.train_loader(train, ctx, seed=0)
    crashing = CrashingLoader(loader.dataset, batch_size=loader.batch_size, sampler=loader.sampler)
    cfg = FinetuneConfig(epochs=3, lr=0.05)
    results = {}
    for name, loaders in (("straight", [loader]), ("resumed", [crashing, loader])):
        model = net()
        for train_loader in loaders:  # the second call continues from the checkpoint
            try:
                history = finetune(
                    model, train_loader, val, cfg, checkpoint=out / f"{name}.pt", dist=ctx
                )
            except Crash:
                model = net()  # the crashed process's weights are gone
            distributed.barrier(ctx)
        results[name] = {"state": model.state_dict(), "history": history.epochs}
    if ctx.main:
        torch.save(results, out / f"world{ctx.world}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
