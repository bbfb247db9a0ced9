"""A synthetic, learnable image classification set for tests and benchmarks without data."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from iaprune.data._registry import DataBundle, register_dataset
from iaprune.data.memory import build_memory_bundle
from iaprune.data.transforms import crop_padding_for
from iaprune.errors import IAPruneError


def _positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise IAPruneError(f"synthetic: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def make_synthetic(
    n: int,
    *,
    num_classes: int,
    in_channels: int,
    size: int,
    noise: float,
    generator: torch.Generator,
    prototypes: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` balanced samples: class prototype plus Gaussian noise of std ``noise``."""
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=generator)]
    x = prototypes[labels] + noise * torch.randn(n, in_channels, size, size, generator=generator)
    return x.contiguous(), labels


@register_dataset("synthetic")
def synthetic(
    root: Path | None,
    *,
    val_fraction: float,
    seed: int,
    augment: bool,
    num_classes: int = 10,
    in_channels: int = 3,
    size: int = 32,
    n_train: int = 512,
    n_test: int = 128,
    noise: float = 1.0,
    data_seed: int = 0,
) -> DataBundle:
    """Random images whose class is a smooth, class-specific mean pattern.

    Each class has a fixed low-frequency prototype (4x4 Gaussian noise
    upsampled to ``size``, unit variance); a sample is its prototype plus
    i.i.d. Gaussian noise of std ``noise``. The images depend only on
    ``data_seed`` (the run ``seed`` only moves the validation split), so a
    small CNN learns them in a few epochs. ``root`` is ignored.

    Options:
        num_classes, in_channels, size: shape of the task (square images).
        n_train, n_test: sizes of the training (before the validation split)
            and test splits.
        noise: per-pixel noise std (larger is harder).
        data_seed: seed of the prototypes and samples.

    Augmentation is a random crop with zero padding scaled to ``size``; no flips.
    """
    num_classes = _positive_int("num_classes", num_classes)
    in_channels = _positive_int("in_channels", in_channels)
    size = _positive_int("size", size, 4)
    n_train = _positive_int("n_train", n_train, 2)
    n_test = _positive_int("n_test", n_test)
    data_seed = _positive_int("data_seed", data_seed, 0)
    if (
        isinstance(noise, bool)
        or not isinstance(noise, int | float)
        or not (math.isfinite(noise) and noise >= 0)
    ):
        raise IAPruneError(f"synthetic: noise must be a finite number >= 0, got {noise!r}")
    gen = torch.Generator().manual_seed(data_seed)
    low = torch.randn(num_classes, in_channels, 4, 4, generator=gen)
    protos = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    protos = (protos - protos.mean(dim=(1, 2, 3), keepdim=True)) / protos.std(
        dim=(1, 2, 3), keepdim=True
    ).clamp_min(1e-6)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return make_synthetic(
            n,
            num_classes=num_classes,
            in_channels=in_channels,
            size=size,
            noise=float(noise),
            generator=gen,
            prototypes=protos,
        )

    xtr, ytr = sample(n_train)
    xte, yte = sample(n_test)
    return build_memory_bundle(
        "synthetic",
        train_images=xtr,
        train_labels=ytr,
        test_images=xte,
        test_labels=yte,
        num_classes=num_classes,
        val_fraction=val_fraction,
        seed=seed,
        augment=augment,
        mean=(0.0,) * in_channels,
        std=(1.0,) * in_channels,
        flip=False,
        crop_padding=crop_padding_for(size),
    )
