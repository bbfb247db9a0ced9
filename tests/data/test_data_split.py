"""Seeded stratified splits."""

from __future__ import annotations

import numpy as np
import pytest

from iaprune.data.split import check_fraction, split_indices
from iaprune.errors import IAPruneError


def test_split_is_partition_and_deterministic() -> None:
    labels = np.repeat(np.arange(5), [10, 20, 30, 40, 50])
    keep, held = split_indices(labels, 0.2, seed=7)
    assert len(held) == 30
    assert np.intersect1d(keep, held).size == 0
    assert np.array_equal(np.sort(np.concatenate([keep, held])), np.arange(150))
    keep2, held2 = split_indices(labels, 0.2, seed=7)
    assert np.array_equal(keep, keep2) and np.array_equal(held, held2)
    _, held3 = split_indices(labels, 0.2, seed=8)
    assert not np.array_equal(held, held3)


def test_split_is_stratified() -> None:
    labels = np.repeat(np.arange(5), [10, 20, 30, 40, 50])
    _, held = split_indices(labels, 0.2, seed=0)
    assert np.bincount(labels[held]).tolist() == [2, 4, 6, 8, 10]


def test_split_exact_size_with_rounding() -> None:
    labels = np.arange(7) % 3  # class sizes 3, 2, 2
    for frac in (0.15, 0.3, 0.5, 0.85):
        keep, held = split_indices(labels, frac, seed=1)
        assert len(held) == round(frac * 7)
        assert len(keep) + len(held) == 7


def test_random_split() -> None:
    keep, held = split_indices(np.zeros(20), 0.25, seed=0, stratify=False)
    assert len(held) == 5 and len(keep) == 15


@pytest.mark.parametrize("value", [0.0, 1.0, -1, 2, float("inf"), True, "x"])
def test_check_fraction_rejects(value: object) -> None:
    with pytest.raises(IAPruneError):
        check_fraction(value)


def test_empty_split_rejected() -> None:
    with pytest.raises(IAPruneError, match="empty split"):
        split_indices(np.zeros(3), 0.1, seed=0)
