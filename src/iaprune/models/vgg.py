"""VGG networks with BatchNorm: CIFAR-style variants and a torchvision-compatible ``vgg16_bn``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from iaprune.models._common import init_weights
from iaprune.models._registry import register_model, scaled_channels

#: Layer configurations: an int is a 3x3 conv -> BN -> ReLU of that width, "M" a 2x2 max-pool.
VGG_CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", *[256] * 3, "M", *[512] * 3, "M", *[512] * 3, "M"],
    "test_vgg": [8, "M", 16, "M", 16],
}


def make_features(
    cfg: Sequence[int | str],
    *,
    in_channels: int,
    width_mult: float,
    conv_bias: bool,
    ceil_mode: bool,
) -> tuple[nn.Sequential, int]:
    """Build the ``features`` Sequential (torchvision layout) and return it with its out width.

    Each int ``v`` in ``cfg`` adds ``Conv2d(3x3, pad 1) -> BatchNorm2d -> ReLU`` (three
    entries, so module indices match torchvision's ``vgg*_bn``); ``"M"`` adds
    ``MaxPool2d(2, 2)``.
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=ceil_mode))
        else:
            assert isinstance(v, int)
            out = scaled_channels(v, width_mult)
            layers += [
                nn.Conv2d(channels, out, kernel_size=3, padding=1, bias=conv_bias),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=False),
            ]
            channels = out
    return nn.Sequential(*layers), channels


class VGG(nn.Module):
    """CIFAR-style VGG: ``features`` -> ``avgpool`` (global) -> flatten -> ``classifier``.

    Max-pools use ``ceil_mode=True`` so spatial size never drops below 1: an 8x8
    input goes 8 -> 4 -> 2 -> 1 -> 1 -> 1 through five pools, so digits (8x8),
    MNIST (28x28) and CIFAR (32x32) images all work. Convs have no bias (BN follows).
    """

    def __init__(
        self,
        cfg: Sequence[int | str],
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        width_mult: float = 1.0,
    ) -> None:
        super().__init__()
        self.features, width = make_features(
            cfg, in_channels=in_channels, width_mult=width_mult, conv_bias=False, ceil_mode=True
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(N, num_classes)``."""
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class VGGImageNet(nn.Module):
    """torchvision's ``VGG`` layout: ``features``, ``avgpool`` (7x7), 3-layer ``classifier``.

    With ``width_mult=1`` and ``in_channels=3`` the state dict of torchvision's
    ``vgg16_bn`` loads with ``strict=True`` (convs keep their bias, like torchvision).
    ``width_mult`` scales the conv widths and the two hidden 4096-wide linear layers.
    Needs inputs of at least 32x32 (five plain 2x2 max-pools).
    """

    def __init__(
        self,
        cfg: Sequence[int | str],
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        width_mult: float = 1.0,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.features, width = make_features(
            cfg, in_channels=in_channels, width_mult=width_mult, conv_bias=True, ceil_mode=False
        )
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        hidden = scaled_channels(4096, width_mult)
        self.classifier = nn.Sequential(
            nn.Linear(width * 7 * 7, hidden),
            nn.ReLU(inplace=False),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=False),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
        init_weights(self)
        for m in self.classifier.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(N, num_classes)``."""
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


@register_model("vgg11")
def vgg11(*, num_classes: int = 10, in_channels: int = 3, width_mult: float = 1.0) -> VGG:
    """VGG11-BN, CIFAR style (global average pool, single linear classifier)."""
    return VGG(
        VGG_CFGS["vgg11"], num_classes=num_classes, in_channels=in_channels, width_mult=width_mult
    )


@register_model("vgg16")
def vgg16(*, num_classes: int = 10, in_channels: int = 3, width_mult: float = 1.0) -> VGG:
    """VGG16-BN, CIFAR style (global average pool, single linear classifier)."""
    return VGG(
        VGG_CFGS["vgg16"], num_classes=num_classes, in_channels=in_channels, width_mult=width_mult
    )


@register_model("test_vgg")
def tiny_vgg(*, num_classes: int = 10, in_channels: int = 3, width_mult: float = 1.0) -> VGG:
    """A tiny 3-conv VGG (widths 8, 16, 16) for fast tests."""
    return VGG(
        VGG_CFGS["test_vgg"],
        num_classes=num_classes,
        in_channels=in_channels,
        width_mult=width_mult,
    )


@register_model("vgg16_imagenet")
def vgg16_imagenet(
    *, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0
) -> VGGImageNet:
    """VGG16-BN with module names identical to torchvision's ``vgg16_bn``."""
    return VGGImageNet(
        VGG_CFGS["vgg16"], num_classes=num_classes, in_channels=in_channels, width_mult=width_mult
    )
