"""Plain-torch augmentation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from iaprune.data.transforms import (
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    build_transform,
    crop_padding_for,
)


def test_crop_padding_scales_with_size() -> None:
    assert crop_padding_for(32) == 4
    assert crop_padding_for(28) == 4
    assert crop_padding_for(16) == 2
    assert crop_padding_for(8) == 1
    assert crop_padding_for(224) == 4


def test_random_crop_keeps_shape_and_matches_pad_then_crop() -> None:
    x = torch.rand(3, 10, 12)
    crop = RandomCrop(3)
    seen = set()
    for _ in range(50):
        y = crop(x)
        assert y.shape == x.shape
        padded = F.pad(x, (3, 3, 3, 3))
        # y must be a window of the zero-padded image
        hits = [
            (t, left)
            for t in range(7)
            for left in range(7)
            if torch.equal(padded[:, t : t + 10, left : left + 12], y)
        ]
        assert hits
        seen.add(hits[0])
    assert len(seen) > 5


def test_random_crop_to_smaller_size() -> None:
    y = RandomCrop(0, size=(4, 5))(torch.rand(2, 8, 8))
    assert y.shape == (2, 4, 5)


def test_augmentation_seeded_by_global_rng() -> None:
    tf = build_transform(augment=True, mean=(0.5,), std=(0.25,), crop_padding=4, flip=True)
    x = torch.rand(1, 32, 32)
    torch.manual_seed(123)
    a = [tf(x) for _ in range(10)]
    torch.manual_seed(123)
    b = [tf(x) for _ in range(10)]
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert a[0].shape == (1, 32, 32) and a[0].dtype == torch.float32
    assert any(not torch.equal(a[0], u) for u in a[1:])


def test_generator_makes_transform_independent_of_global_rng() -> None:
    x = torch.rand(1, 16, 16)
    a = RandomCrop(2, generator=torch.Generator().manual_seed(5))(x)
    torch.manual_seed(99)
    b = RandomCrop(2, generator=torch.Generator().manual_seed(5))(x)
    assert torch.equal(a, b)


def test_flip_and_normalize() -> None:
    x = torch.arange(6.0).view(1, 2, 3)
    assert torch.equal(RandomHorizontalFlip(p=1.0)(x), x.flip(-1))
    assert torch.equal(RandomHorizontalFlip(p=0.0)(x), x)
    n = Normalize((1.0, 2.0), (2.0, 4.0))(torch.ones(2, 1, 1) * 3)
    assert n.flatten().tolist() == [1.0, 0.25]


def test_eval_transform_is_deterministic() -> None:
    tf = build_transform(augment=False, mean=(0.0,), std=(1.0,), crop_padding=4, flip=True)
    x = torch.rand(1, 8, 8)
    assert torch.equal(tf(x), x)
