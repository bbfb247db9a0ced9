"""An in-memory image dataset and the bundle builder shared by the array-backed datasets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from iaprune.data._registry import DataBundle
from iaprune.data.split import split_indices
from iaprune.data.transforms import Transform, build_transform, center_pad, crop_padding_for
from iaprune.errors import IAPruneError

__all__ = ["TensorImageDataset", "build_memory_bundle"]


class TensorImageDataset(Dataset[tuple[Tensor, Tensor]]):
    """Images held in one tensor, optionally viewed through an index subset.

    Args:
        images: ``(N, C, H, W)`` tensor, ``uint8`` (scaled by 1/255) or floating
            point (used as is, expected in [0, 1]).
        labels: ``(N,)`` integer labels.
        transform: applied to each float32 ``(C, H, W)`` image on access.
        indices: optional subset of ``range(N)``; subsets share storage.

    Items are ``(float32 (C, H, W) tensor, int64 scalar tensor)``.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        *,
        transform: Transform | None = None,
        indices: Sequence[int] | np.ndarray | Tensor | None = None,
    ) -> None:
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"labels must be ({len(images)},), got shape {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.to(torch.int64)
        self.transform = transform
        idx = torch.arange(len(images)) if indices is None else torch.as_tensor(indices)
        self.indices = idx.to(torch.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        j = int(self.indices[i])
        x = self.images[j]
        # Always a fresh tensor, so transforms may work in place without touching storage.
        x = (
            x.to(torch.float32).div_(255.0)
            if x.dtype == torch.uint8
            else x.to(torch.float32, copy=True)
        )
        if self.transform is not None:
            x = self.transform(x)
        return x, self.labels[j]

    @property
    def targets(self) -> np.ndarray:
        """Labels of the samples in this view, in order."""
        return self.labels[self.indices].numpy()

    def subset(
        self, indices: Sequence[int] | np.ndarray, transform: Transform | None
    ) -> TensorImageDataset:
        """A view of positions ``indices`` of this dataset with another transform."""
        idx = self.indices[torch.as_tensor(np.asarray(indices), dtype=torch.int64)]
        return TensorImageDataset(self.images, self.labels, transform=transform, indices=idx)


def pad_images(images: Tensor, pad_to: int | None, name: str) -> Tensor:
    """Zero-pad ``(N, C, H, W)`` images symmetrically to ``pad_to`` (None: unchanged)."""
    if pad_to is None:
        return images
    h, w = images.shape[-2:]
    if isinstance(pad_to, bool) or not isinstance(pad_to, int) or pad_to < max(h, w):
        raise IAPruneError(
            f"{name}: pad_to must be None or an integer >= {max(h, w)}, got {pad_to!r}"
        )
    return center_pad(images, pad_to)


def build_memory_bundle(
    name: str,
    *,
    train_images: Tensor,
    train_labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    num_classes: int,
    val_fraction: float,
    seed: int,
    augment: bool,
    mean: Sequence[float],
    std: Sequence[float],
    flip: bool,
    crop_padding: int | None = None,
) -> DataBundle:
    """Build a :class:`DataBundle` from in-memory train/test tensors.

    The validation part is a seeded stratified split of the training tensors.
    ``crop_padding`` defaults to :func:`crop_padding_for` of the image side.
    """
    if crop_padding is None:
        crop_padding = crop_padding_for(int(min(train_images.shape[-2:])))
    eval_tf = build_transform(augment=False, mean=mean, std=std)
    train_tf = build_transform(
        augment=augment, mean=mean, std=std, crop_padding=crop_padding, flip=flip
    )
    full = TensorImageDataset(train_images, train_labels)
    keep, val = split_indices(full.targets, val_fraction, seed)
    test = TensorImageDataset(test_images, test_labels, transform=eval_tf)
    return DataBundle(
        name=name,
        train=full.subset(keep, train_tf),
        val=full.subset(val, eval_tf),
        test=test,
        num_classes=num_classes,
        in_channels=int(train_images.shape[1]),
        input_size=(int(train_images.shape[2]), int(train_images.shape[3])),
        train_eval=full.subset(keep, eval_tf),
    )
