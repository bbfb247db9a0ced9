"""The synthetic dataset."""

from __future__ import annotations

import pytest
import torch

from iaprune.data import create_dataset
from iaprune.errors import IAPruneError


def test_synthetic_defaults() -> None:
    b = create_dataset("synthetic")
    assert (b.num_classes, b.in_channels, b.input_size) == (10, 3, (32, 32))
    assert len(b.train) + len(b.val) == 512 and len(b.test) == 128
    x, y = b.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_synthetic_options_and_determinism() -> None:
    a = create_dataset("synthetic", num_classes=3, in_channels=1, size=12, n_train=60, n_test=9)
    assert (a.num_classes, a.in_channels, a.input_size) == (3, 1, (12, 12))
    assert len(a.test) == 9
    b = create_dataset("synthetic", num_classes=3, in_channels=1, size=12, n_train=60, n_test=9)
    assert torch.equal(a.test[0][0], b.test[0][0])
    c = create_dataset("synthetic", data_seed=1, num_classes=3, in_channels=1, size=12)
    assert not torch.equal(a.test[0][0], c.test[0][0])


def test_synthetic_is_learnable() -> None:
    b = create_dataset("synthetic", augment=False)

    def stack(ds: torch.utils.data.Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        items = [ds[i] for i in range(len(ds))]  # type: ignore[arg-type]
        return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])

    xtr, ytr = stack(b.train_eval)
    xte, yte = stack(b.test)
    means = torch.stack([xtr[ytr == c].mean(0) for c in range(10)]).flatten(1)
    pred = torch.cdist(xte.flatten(1), means).argmin(1)
    assert (pred == yte).float().mean() > 0.9


@pytest.mark.parametrize(
    "kw", [{"num_classes": 0}, {"size": 2}, {"n_test": 0}, {"noise": -1.0}, {"size": 8.0}]
)
def test_synthetic_bad_options(kw: dict[str, object]) -> None:
    with pytest.raises(IAPruneError, match="synthetic"):
        create_dataset("synthetic", **kw)
