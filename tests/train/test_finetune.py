"""Fine-tuning: learns, keeps the best checkpoint, stops on NaN keeping the last good one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from iaprune.config import FinetuneConfig
from iaprune.errors import IAPruneError
from iaprune.train import evaluate, finetune, load_weights, recalibrate_bn


def _batches(seed: int, n: int = 4, poison: bool = False) -> list:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        y = torch.randint(0, 3, (16,), generator=gen)
        x = torch.randn(16, 4, generator=gen) + 4 * nn.functional.one_hot(y, 4).float()
        out.append((x, y))
    if poison:
        out[-1] = (torch.full_like(out[-1][0], float("nan")), out[-1][1])
    return out


class EpochData:
    """Clean batches in the first epoch, a NaN batch in the second."""

    def __init__(self) -> None:
        self.epoch = 0

    def __len__(self) -> int:
        return 4

    def __iter__(self):
        self.epoch += 1
        return iter(_batches(0, poison=self.epoch >= 2))


def test_finetune_learns_a_separable_problem() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    history = finetune(model, _batches(0), _batches(1), FinetuneConfig(epochs=5, lr=0.1))
    assert len(history.epochs) == 5
    assert evaluate(model, _batches(1))["top1"] > 0.9


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path) -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    ckpt = tmp_path / "ft.pt"
    with pytest.raises(IAPruneError, match="stopped at epoch 2.*last good weights kept"):
        finetune(model, EpochData(), _batches(1), FinetuneConfig(epochs=3, lr=0.1), checkpoint=ckpt)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    reloaded = load_weights(nn.Linear(4, 3), ckpt)
    torch.testing.assert_close(reloaded.weight, model.weight)


def test_bn_recalibration_matches_batch_statistics() -> None:
    bn = nn.BatchNorm1d(3)
    data = [(torch.randn(32, 3) * 2 + 5, torch.zeros(32)) for _ in range(4)]
    recalibrate_bn(nn.Sequential(bn), data, steps=4)
    allx = torch.cat([x for x, _ in data])
    torch.testing.assert_close(bn.running_mean, allx.mean(0), atol=1e-4, rtol=0)
    assert bn.momentum == 0.1


def test_resume_after_nan_continues_from_last_good_epoch_with_a_new_lr(tmp_path) -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    ckpt = tmp_path / "ft.partial.pt"
    with pytest.raises(IAPruneError, match="stopped at epoch 2"):
        finetune(model, EpochData(), _batches(1), FinetuneConfig(epochs=3, lr=0.1), checkpoint=ckpt)
    first = torch.load(ckpt, weights_only=True)["history"]
    history = finetune(
        nn.Linear(4, 3),
        _batches(0),
        _batches(1),
        FinetuneConfig(epochs=3, lr=0.01),
        checkpoint=ckpt,
    )
    assert len(history.epochs) == 3 and history.epochs[0] == first[0]
    assert torch.load(ckpt, weights_only=True)["optimizer"]["param_groups"][0]["initial_lr"] == 0.01


class Interrupted:
    """A shuffled loader whose ``fail_at``-th epoch is interrupted before it starts."""

    def __init__(self, fail_at: int | None = None) -> None:
        x = torch.cat([b[0] for b in _batches(0)])
        y = torch.cat([b[1] for b in _batches(0)])
        self.loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True
        )
        self.fail_at, self.epoch = fail_at, 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        self.epoch += 1
        if self.epoch == self.fail_at:
            raise KeyboardInterrupt
        return iter(self.loader)


def test_a_resumed_fine_tune_equals_an_uninterrupted_one(tmp_path) -> None:
    cfg = FinetuneConfig(epochs=3, lr=0.05)

    def run(loader: Interrupted, name: str) -> None:
        torch.manual_seed(0)
        finetune(nn.Linear(4, 3), loader, _batches(1), cfg, checkpoint=tmp_path / name)

    run(Interrupted(), "a.pt")
    with pytest.raises(KeyboardInterrupt):
        run(Interrupted(fail_at=2), "b.pt")
    torch.rand(1000)  # the resuming process draws other numbers before the fine-tune
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    torch.rand(1000)
    finetune(model, Interrupted(), _batches(1), cfg, checkpoint=tmp_path / "b.pt")
    # the last epoch's weights (the returned ones are the best on validation, maybe earlier)
    whole = torch.load(tmp_path / "a.pt", weights_only=True)["current"]
    resumed = torch.load(tmp_path / "b.pt", weights_only=True)["current"]
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
