"""ImageNet ResNets whose state-dict keys match torchvision's ``resnet18`` / ``resnet34``."""

from __future__ import annotations

from iaprune.models._registry import register_model
from iaprune.models.resnet_cifar import ResNet


@register_model("resnet18_imagenet")
def resnet18_imagenet(
    *, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0
) -> ResNet:
    """torchvision-compatible ResNet-18: 7x7/2 stem + max-pool, [2, 2, 2, 2] BasicBlocks.

    With ``width_mult=1`` and ``in_channels=3`` torchvision's ``resnet18`` state dict
    loads with ``strict=True``.
    """
    return ResNet(
        [2, 2, 2, 2],
        [64, 128, 256, 512],
        stem="imagenet",
        num_classes=num_classes,
        in_channels=in_channels,
        width_mult=width_mult,
    )


@register_model("resnet34_imagenet")
def resnet34_imagenet(
    *, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0
) -> ResNet:
    """torchvision-compatible ResNet-34: 7x7/2 stem + max-pool, [3, 4, 6, 3] BasicBlocks.

    With ``width_mult=1`` and ``in_channels=3`` torchvision's ``resnet34`` state dict
    loads with ``strict=True``.
    """
    return ResNet(
        [3, 4, 6, 3],
        [64, 128, 256, 512],
        stem="imagenet",
        num_classes=num_classes,
        in_channels=in_channels,
        width_mult=width_mult,
    )
