"""Plain-torch image transforms (no torchvision).

Every transform takes and returns a float32 tensor of shape ``(C, H, W)``.
Randomness comes from an optional :class:`torch.Generator`; without one the
global torch RNG is used, so ``torch.manual_seed`` (and the per-worker seeding
that :class:`torch.utils.data.DataLoader` does from its ``generator``) makes
augmentation reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Transform = Callable[[Tensor], Tensor]

__all__ = [
    "CenterPad",
    "Compose",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "Transform",
    "build_transform",
    "crop_padding_for",
]


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Tensor) -> Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class RandomCrop:
    """Zero-pad every side by ``padding`` pixels, then crop a random ``size`` window.

    The output has the same ``(H, W)`` as the input when ``size`` is None.
    Padding is applied before normalisation, so zero means black.
    """

    def __init__(
        self,
        padding: int,
        size: tuple[int, int] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.padding = padding
        self.size = size
        self.generator = generator

    def __call__(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        th, tw = self.size if self.size is not None else (h, w)
        p = self.padding
        ph, pw = h + 2 * p, w + 2 * p
        if ph < th or pw < tw:
            raise ValueError(f"crop size {(th, tw)} larger than padded image {(ph, pw)}")
        # One RNG call for both offsets (the modulo bias of 2**30 is negligible).
        r = torch.randint(0, 1 << 30, (2,), generator=self.generator).tolist()
        top, left = r[0] % (ph - th + 1) - p, r[1] % (pw - tw + 1) - p
        if top == 0 and left == 0 and (th, tw) == (h, w):
            return x
        # Copy the overlap of the crop window with the image into a zero canvas:
        # the same result as zero-padding then cropping, without the padded copy.
        out = x.new_zeros((*x.shape[:-2], th, tw))
        y0, y1 = max(top, 0), min(top + th, h)
        x0, x1 = max(left, 0), min(left + tw, w)
        if y0 < y1 and x0 < x1:
            dst = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
            src = (slice(y0, y1), slice(x0, x1))
            if x.ndim == 3:  # plain slicing is much faster than Ellipsis indexing
                out[:, dst[0], dst[1]].copy_(x[:, src[0], src[1]])
            else:
                out[(..., *dst)] = x[(..., *src)]
        return out

    def __repr__(self) -> str:
        return f"RandomCrop(padding={self.padding}, size={self.size})"


class RandomHorizontalFlip:
    """Mirror the image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        self.p = p
        self.generator = generator

    def __call__(self, x: Tensor) -> Tensor:
        if torch.rand((), generator=self.generator).item() < self.p:
            return x.flip(-1)
        return x

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """Per-channel ``(x - mean) / std``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std):
            raise ValueError("mean and std must have the same length")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be > 0, got {tuple(std)}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


class CenterPad:
    """Zero-pad an image symmetrically up to ``size x size`` (no-op if already that big)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, x: Tensor) -> Tensor:
        return center_pad(x, self.size)

    def __repr__(self) -> str:
        return f"CenterPad({self.size})"


def center_pad(x: Tensor, size: int) -> Tensor:
    """Zero-pad the last two dims of ``x`` symmetrically to at least ``size``."""
    h, w = x.shape[-2:]
    dh, dw = max(0, size - h), max(0, size - w)
    if not dh and not dw:
        return x
    return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


def crop_padding_for(size: int) -> int:
    """Random-crop padding for an image of side ``size``: 4 for 32, scaled down for smaller.

    ``max(1, round(4 * size / 32))``, capped at 4: 8 -> 1, 28 -> 4, 32 -> 4.
    """
    return min(4, max(1, round(4 * size / 32)))


def build_transform(
    *,
    augment: bool,
    mean: Sequence[float],
    std: Sequence[float],
    crop_padding: int = 0,
    flip: bool = False,
) -> Transform:
    """The standard pipeline: optional random crop / flip, then normalisation.

    Args:
        augment: if False only normalisation is applied.
        mean: per-channel mean (in [0, 1] pixel units).
        std: per-channel standard deviation.
        crop_padding: zero padding for the random crop (0 disables the crop).
        flip: enable random horizontal flips.
    """
    steps: list[Transform] = []
    if augment:
        if crop_padding > 0:
            steps.append(RandomCrop(crop_padding))
        if flip:
            steps.append(RandomHorizontalFlip())
    steps.append(Normalize(mean, std))
    return steps[0] if len(steps) == 1 else Compose(steps)
