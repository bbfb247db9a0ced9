"""scikit-learn digits bundle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iaprune.data import create_dataset
from iaprune.data.digits import digits_test_indices
from iaprune.data.memory import TensorImageDataset
from iaprune.errors import IAPruneError


def _global_indices(ds: object) -> np.ndarray:
    assert isinstance(ds, TensorImageDataset)
    dev, _ = digits_test_indices()
    return dev[ds.indices.numpy()]


def test_digits_shapes_and_labels() -> None:
    b = create_dataset("digits")
    assert (b.num_classes, b.in_channels, b.input_size) == (10, 1, (8, 8))
    assert len(b.train) + len(b.val) + len(b.test) == 1797
    assert len(b.test) == round(0.2 * 1797)
    assert len(b.val) == round(0.1 * (1797 - len(b.test)))
    assert len(b.train_eval) == len(b.train)
    for ds in (b.train, b.val, b.test, b.train_eval):
        x, y = ds[0]
        assert x.shape == (1, 8, 8) and x.dtype == torch.float32
        assert y.dtype == torch.int64 and y.ndim == 0 and 0 <= int(y) < 10
    assert set(np.unique(b.test.targets)) == set(range(10))


def test_digits_splits_disjoint_and_test_fixed() -> None:
    a = create_dataset("digits", seed=0)
    c = create_dataset("digits", seed=1)
    _, test = digits_test_indices()
    for b in (a, c):
        tr, va = _global_indices(b.train), _global_indices(b.val)
        assert np.intersect1d(tr, va).size == 0
        assert np.intersect1d(va, test).size == 0
        assert np.intersect1d(tr, test).size == 0
        assert np.array_equal(_global_indices(b.train_eval), tr)
    # the test split does not depend on the run seed
    assert torch.equal(a.test.images, c.test.images)
    assert np.array_equal(a.test.targets, c.test.targets)
    # the validation split does
    assert not np.array_equal(_global_indices(a.val), _global_indices(c.val))


def test_digits_deterministic_for_seed() -> None:
    a = create_dataset("digits", seed=5)
    b = create_dataset("digits", seed=5)
    assert np.array_equal(_global_indices(a.val), _global_indices(b.val))
    assert np.array_equal(_global_indices(a.train), _global_indices(b.train))


def test_digits_eval_splits_unaugmented_and_train_augmented() -> None:
    b = create_dataset("digits", val_fraction=0.2)
    assert torch.equal(b.val[3][0], b.val[3][0])
    assert torch.equal(b.train_eval[3][0], b.train_eval[3][0])
    torch.manual_seed(0)
    crops = [b.train[3][0] for _ in range(20)]
    assert any(not torch.equal(crops[0], c) for c in crops)
    torch.manual_seed(0)
    assert all(torch.equal(c, b.train[3][0]) for c in crops)
    nb = create_dataset("digits", augment=False)
    assert torch.equal(nb.train[3][0], nb.train_eval[3][0])


def test_digits_values_normalised_from_unit_range() -> None:
    b = create_dataset("digits", augment=False)
    x = torch.stack([b.train_eval[i][0] for i in range(len(b.train_eval))])
    assert abs(float(x.mean())) < 0.1
    assert 0.8 < float(x.std()) < 1.2


def test_digits_pad_to() -> None:
    b = create_dataset("digits", pad_to=32)
    assert b.input_size == (32, 32)
    assert b.train[0][0].shape == (1, 32, 32)
    with pytest.raises(IAPruneError, match="pad_to"):
        create_dataset("digits", pad_to=4)
