"""CIFAR-10/100 readers on small pickle batches written in the real format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from iaprune.data import create_dataset
from iaprune.data.cifar import CIFAR10, CIFAR100, load_cifar_batch
from iaprune.errors import IAPruneError


def write_batch(path: Path, n: int, label_key: bytes, num_classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    d: dict[bytes, object] = {
        b"batch_label": b"testing batch",
        label_key: [int(v) for v in np.arange(n) % num_classes],
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    if label_key == b"fine_labels":
        d[b"coarse_labels"] = [int(v) % 20 for v in np.arange(n)]
    with path.open("wb") as f:
        pickle.dump(d, f, protocol=2)
    return data


def make_cifar10(parent: Path, n: int = 20) -> Path:
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        write_batch(folder / f"data_batch_{i}", n, b"labels", 10, seed=i)
    write_batch(folder / "test_batch", n, b"labels", 10, seed=0)
    return folder


def make_cifar100(parent: Path, n: int = 200) -> Path:
    folder = parent / "cifar-100-python"
    folder.mkdir(parents=True)
    write_batch(folder / "train", n, b"fine_labels", 100, seed=1)
    write_batch(folder / "test", 50, b"fine_labels", 100, seed=0)
    return folder


@pytest.mark.parametrize("use_parent", [True, False])
def test_cifar10_bundle(tmp_path: Path, use_parent: bool) -> None:
    folder = make_cifar10(tmp_path)
    b = create_dataset("cifar10", root=tmp_path if use_parent else folder, val_fraction=0.1)
    assert (b.num_classes, b.in_channels, b.input_size) == (10, 3, (32, 32))
    assert (len(b.train), len(b.val), len(b.test)) == (90, 10, 20)
    assert np.bincount(b.val.targets).tolist() == [1] * 10
    x, y = b.test[1]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    raw, labels = load_cifar_batch(folder / "test_batch")
    mean = torch.tensor(CIFAR10.mean).view(3, 1, 1)
    std = torch.tensor(CIFAR10.std).view(3, 1, 1)
    expected = (torch.from_numpy(raw[1]).float() / 255 - mean) / std
    assert torch.allclose(x, expected, atol=1e-5)
    assert int(y) == int(labels[1]) == 1
    assert b.train[0][0].shape == (3, 32, 32)


def test_cifar100_bundle(tmp_path: Path) -> None:
    make_cifar100(tmp_path)
    b = create_dataset("cifar100", root=tmp_path, val_fraction=0.5)
    assert (b.num_classes, b.in_channels) == (100, 3)
    assert (len(b.train), len(b.val), len(b.test)) == (100, 100, 50)
    assert set(b.val.targets.tolist()) == set(range(100))  # stratified on fine labels
    assert int(b.test[7][1]) == 7


def test_cifar_missing(tmp_path: Path) -> None:
    with pytest.raises(IAPruneError, match="does not exist"):
        create_dataset("cifar10", root=tmp_path / "absent")
    with pytest.raises(IAPruneError, match="data_batch_1"):
        create_dataset("cifar10", root=tmp_path)
    (tmp_path / CIFAR100.archive).write_bytes(b"")
    with pytest.raises(IAPruneError, match="extract cifar-100-python.tar.gz"):
        create_dataset("cifar100", root=tmp_path)


def test_cifar_corrupt_files(tmp_path: Path) -> None:
    folder = make_cifar10(tmp_path)
    batch = folder / "data_batch_3"
    good = batch.read_bytes()
    batch.write_bytes(good[: len(good) // 2])
    with pytest.raises(IAPruneError, match="corrupt CIFAR batch file .*data_batch_3"):
        create_dataset("cifar10", root=tmp_path)
    with batch.open("wb") as f:
        pickle.dump({b"labels": [0]}, f, protocol=2)
    with pytest.raises(IAPruneError, match="corrupt"):
        create_dataset("cifar10", root=tmp_path)
    with batch.open("wb") as f:
        pickle.dump({b"labels": [0, 1], b"data": np.zeros((2, 100), np.uint8)}, f, protocol=2)
    with pytest.raises(IAPruneError, match=r"expected uint8 \(N, 3072\)"):
        create_dataset("cifar10", root=tmp_path)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo pwned > pwned.txt",))


def test_cifar_pickle_cannot_run_code(tmp_path: Path) -> None:
    folder = make_cifar10(tmp_path)
    with (folder / "test_batch").open("wb") as f:
        pickle.dump({b"data": _Evil()}, f, protocol=2)
    with pytest.raises(IAPruneError, match="forbidden global"):
        create_dataset("cifar10", root=tmp_path)
    assert not Path("pwned.txt").exists()
