"""Registry, create_dataset validation and make_loaders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from iaprune.data import DataBundle, create_dataset, list_datasets, make_loaders, register_dataset
from iaprune.data._registry import DATASETS
from iaprune.errors import IAPruneError

BUILTINS = {"cifar10", "cifar100", "digits", "fashion-mnist", "imagefolder", "mnist", "synthetic"}


def small() -> DataBundle:
    return create_dataset("synthetic", n_train=40, n_test=12, size=8, num_classes=4)


def test_list_datasets_has_builtins() -> None:
    names = list_datasets()
    assert set(names) >= BUILTINS
    assert names == sorted(names)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(IAPruneError) as info:
        create_dataset("no-such-set")
    msg = str(info.value)
    assert "no-such-set" in msg
    assert "\n" not in msg
    for name in BUILTINS:
        assert name in msg


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(IAPruneError, match=r"unknown option\(s\) bogus; valid: pad_to"):
        create_dataset("digits", bogus=1)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, float("nan"), True, "0.1", None])
def test_bad_val_fraction(fraction: object) -> None:
    with pytest.raises(IAPruneError, match="val_fraction"):
        create_dataset("synthetic", val_fraction=fraction)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed(seed: object) -> None:
    with pytest.raises(IAPruneError, match="seed"):
        create_dataset("synthetic", seed=seed)  # type: ignore[arg-type]


def test_tiny_fraction_leaving_empty_split() -> None:
    with pytest.raises(IAPruneError, match="empty split"):
        create_dataset("synthetic", n_train=10, val_fraction=0.01)


def test_register_custom_dataset() -> None:
    name = "test-data-custom"
    if name not in DATASETS:

        @register_dataset(name)
        def _factory(
            root: Path | None, *, val_fraction: float, seed: int, augment: bool, scale: int = 1
        ) -> DataBundle:
            b = small()
            return DataBundle(
                name=name,
                train=b.train,
                val=b.val,
                test=b.test,
                num_classes=b.num_classes * scale,
                in_channels=b.in_channels,
                input_size=b.input_size,
                train_eval=b.train_eval,
            )

    assert name in list_datasets()
    assert create_dataset(name, scale=2).num_classes == 8
    with pytest.raises(IAPruneError, match="valid: scale"):
        create_dataset(name, other=3)


def test_make_loaders_keys_and_batches() -> None:
    b = small()
    loaders = make_loaders(b, 8, seed=3)
    assert set(loaders) == {"train", "val", "test", "train_eval"}
    x, y = next(iter(loaders["train"]))
    assert x.shape == (8, 3, 8, 8) and x.dtype == torch.float32
    assert y.shape == (8,) and y.dtype == torch.int64
    assert sum(len(xb) for xb, _ in loaders["train"]) == len(b.train)  # drop_last=False
    labels = torch.cat([yb for _, yb in loaders["train_eval"]])
    assert torch.equal(labels, torch.as_tensor(b.train_eval.targets))  # unshuffled


def test_make_loaders_seeded_shuffle() -> None:
    b = small()

    def first_labels(seed: int) -> torch.Tensor:
        torch.manual_seed(0)  # augmentation uses the global RNG with num_workers=0
        return torch.cat([y for _, y in make_loaders(b, 5, seed=seed)["train"]])

    a, a2, c = first_labels(1), first_labels(1), first_labels(2)
    assert torch.equal(a, a2)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("kw", [{"batch_size": 0}, {"batch_size": 4, "num_workers": -1}])
def test_make_loaders_validation(kw: dict[str, int]) -> None:
    with pytest.raises(IAPruneError):
        make_loaders(small(), **kw)  # type: ignore[arg-type]
