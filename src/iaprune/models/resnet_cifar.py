"""ResNets with a CIFAR stem (3x3 conv, stride 1, no max-pool) and the shared BasicBlock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from iaprune.models._common import init_weights
from iaprune.models._registry import register_model, scaled_channels


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: ``conv1, bn1, relu, conv2, bn2, downsample``.

    ``downsample`` is ``Sequential(Conv2d 1x1 (stride), BatchNorm2d)`` when the
    stride is not 1 or the width changes (option-B shortcut), otherwise ``None``
    (identity shortcut). ReLUs are not in-place so forward hooks on BN outputs
    see unmodified tensors.
    """

    expansion: int = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A BasicBlock ResNet with torchvision module names.

    Modules: ``conv1``, ``bn1``, ``relu``, [``maxpool``], ``layer1`` .. ``layerN``
    (one :class:`torch.nn.Sequential` of :class:`BasicBlock` per stage; stage ``i > 1``
    starts with stride 2), ``avgpool`` (global), ``fc``.

    Args:
        layers: number of blocks per stage.
        widths: base width of each stage (scaled by ``width_mult``).
        stem: ``"cifar"`` = 3x3 stride-1 conv, no max-pool (stem width ``widths[0]``);
            ``"imagenet"`` = 7x7 stride-2 conv (64 wide) + 3x3 stride-2 max-pool.
    """

    def __init__(
        self,
        layers: Sequence[int],
        widths: Sequence[int],
        *,
        stem: Literal["cifar", "imagenet"] = "cifar",
        num_classes: int = 10,
        in_channels: int = 3,
        width_mult: float = 1.0,
    ) -> None:
        super().__init__()
        if len(layers) != len(widths) or not layers:
            raise ValueError("layers and widths must be non-empty and of equal length")
        if stem == "imagenet":
            stem_width = scaled_channels(64, width_mult)
            self.conv1 = nn.Conv2d(
                in_channels, stem_width, kernel_size=7, stride=2, padding=3, bias=False
            )
        else:
            stem_width = scaled_channels(widths[0], width_mult)
            self.conv1 = nn.Conv2d(
                in_channels, stem_width, kernel_size=3, stride=1, padding=1, bias=False
            )
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=False)
        self.maxpool: nn.MaxPool2d | None = (
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stem == "imagenet" else None
        )
        self.num_stages = len(layers)
        planes_in = stem_width
        for i, (n_blocks, base) in enumerate(zip(layers, widths, strict=True)):
            planes = scaled_channels(base, width_mult)
            blocks: list[nn.Module] = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(planes_in, planes, stride))
                planes_in = planes
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes_in, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(N, num_classes)``."""
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


@register_model("resnet18")
def resnet18(*, num_classes: int = 10, in_channels: int = 3, width_mult: float = 1.0) -> ResNet:
    """ResNet-18 ([2, 2, 2, 2] blocks, widths 64-512) with a CIFAR stem."""
    return ResNet(
        [2, 2, 2, 2],
        [64, 128, 256, 512],
        num_classes=num_classes,
        in_channels=in_channels,
        width_mult=width_mult,
    )


@register_model("resnet34")
def resnet34(*, num_classes: int = 10, in_channels: int = 3, width_mult: float = 1.0) -> ResNet:
    """ResNet-34 ([3, 4, 6, 3] blocks, widths 64-512) with a CIFAR stem."""
    return ResNet(
        [3, 4, 6, 3],
        [64, 128, 256, 512],
        num_classes=num_classes,
        in_channels=in_channels,
        width_mult=width_mult,
    )


@register_model("resnet56")
def resnet56(*, num_classes: int = 10, in_channels: int = 3, width_mult: float = 1.0) -> ResNet:
    """The CIFAR ResNet-56 of He et al. (2016): 3 stages x 9 BasicBlocks, widths 16/32/64.

    Unlike the paper's option-A (zero-padding) shortcut, this uses option B: a
    1x1 conv + BN ``downsample`` where the shape changes (first block of stages
    2 and 3), so it has 855,770 parameters for 10 classes instead of ~853k.
    """
    return ResNet(
        [9, 9, 9],
        [16, 32, 64],
        num_classes=num_classes,
        in_channels=in_channels,
        width_mult=width_mult,
    )


@register_model("test_resnet")
def tiny_resnet(*, num_classes: int = 10, in_channels: int = 3, width_mult: float = 1.0) -> ResNet:
    """A tiny CIFAR ResNet for tests: 2 stages x 2 blocks, widths 8/16.

    ``layer1`` has identity shortcuts; ``layer2.0`` has a ``downsample`` and
    ``layer2.1`` an identity shortcut.
    """
    return ResNet(
        [2, 2], [8, 16], num_classes=num_classes, in_channels=in_channels, width_mult=width_mult
    )
