"""scikit-learn's bundled 8x8 handwritten digits (no download needed)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from iaprune.data._registry import DataBundle, register_dataset
from iaprune.data.memory import build_memory_bundle, pad_images
from iaprune.data.split import split_indices
from iaprune.data.transforms import crop_padding_for

__all__ = ["DIGITS_TEST_FRACTION", "DIGITS_TEST_SEED", "digits_test_indices"]

#: The fixed test split: 20 % stratified, seed 0, independent of the run seed.
DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SEED = 0

_MEAN = (0.3053,)
_STD = (0.3760,)


@lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (np.asarray(d.images, dtype=np.float32) / 16.0)[:, None]  # (1797, 1, 8, 8)
    labels = np.asarray(d.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def digits_test_indices() -> tuple[np.ndarray, np.ndarray]:
    """``(development, test)`` indices into scikit-learn's 1797 digits (fixed, seed 0)."""
    _, labels = _load_digits()
    return split_indices(labels, DIGITS_TEST_FRACTION, DIGITS_TEST_SEED, name="test fraction")


@register_dataset("digits")
def digits(
    root: Path | None,
    *,
    val_fraction: float,
    seed: int,
    augment: bool,
    pad_to: int | None = None,
) -> DataBundle:
    """scikit-learn's 8x8 digits: 1797 grey images scaled to [0, 1], 10 classes.

    There is no official test split: a fixed stratified 20 % (seed 0, the same
    for every run) is the test split and the validation part is carved from
    the rest with the run seed. ``root`` is ignored.

    Options:
        pad_to: zero-pad the 8x8 images to this size (e.g. 32); None keeps 8x8.

    Augmentation is a random crop with 1-pixel zero padding; no flips.
    """
    images, labels = _load_digits()
    dev, test = digits_test_indices()
    x = pad_images(torch.from_numpy(images.copy()), pad_to, "digits")
    y = torch.from_numpy(labels.copy())
    return build_memory_bundle(
        "digits",
        train_images=x[dev],
        train_labels=y[dev],
        test_images=x[test],
        test_labels=y[test],
        num_classes=10,
        val_fraction=val_fraction,
        seed=seed,
        augment=augment,
        mean=_MEAN,
        std=_STD,
        flip=False,
        crop_padding=crop_padding_for(8),
    )
