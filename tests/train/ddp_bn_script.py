"""Run by ``torchrun`` from test_distributed.py (and in-process for world size 1).

Fine-tunes a BatchNorm-heavy vgg16 (width 1/8) on seeded synthetic 32x32 images for 2
epochs, with and without ``sync_bn``, in float64: in float32 a difference in the last bit
of a BatchNorm output can flip a ReLU and the runs drift apart by rounding alone, which
would hide whether the statistics are the global batch's. Rank 0 saves the final weights
and histories.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from iaprune.config import FinetuneConfig
from iaprune.models import create_model
from iaprune.train import distributed, finetune


def data() -> tuple[DataLoader, DataLoader]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(160, 1, 32, 32, generator=gen, dtype=torch.float64)
    y = (x[:, :, :16].mean((1, 2, 3)) > x[:, :, 16:].mean((1, 2, 3))).long()
    return (
        DataLoader(TensorDataset(x[:128], y[:128]), batch_size=32),
        DataLoader(TensorDataset(x[128:], y[128:]), batch_size=32),
    )


def main(out: Path) -> None:
    ctx, _ = distributed.init(torch.device("cpu"))
    train, val = data()
    loader = distributed.train_loader(train, ctx, seed=0)
    results = {}
    for sync in (True, False):
        torch.manual_seed(0)
        model = create_model("vgg16", num_classes=2, in_channels=1, width_mult=0.125).double()
        cfg = FinetuneConfig(epochs=2, lr=0.05, sync_bn=sync)
        history = finetune(model, loader, val, cfg, dist=ctx)
        kinds = {
            type(m) for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        }
        assert kinds == {torch.nn.BatchNorm2d}, kinds  # the originals are back
        results[f"sync{int(sync)}"] = {"state": model.state_dict(), "history": history.epochs}
    if ctx.main:
        torch.save(results, out / f"bn_world{ctx.world}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
