"""Tiny CNNs covering every layer type surgery accepts, for the equivalence tests.

Each builder takes ``in_channels`` and returns a model in eval mode with randomised
BatchNorm statistics; seed the global RNG first for reproducible weights. The last ones
are minimal equivalents of third-party architectures that torch-pruning cannot follow
everywhere (issue 23): the groups it gets wrong must be excluded, the rest stay exact.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from iaprune.models import create_model
from tests.conftest import UserCNN, randomize_bn


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout))


class GroupedCNN(nn.Module):
    """A grouped 3x3 conv inside a residual, then a grouped 1x1 conv with bias, no BN."""

    def __init__(
        self, in_channels: int = 3, groups: int = 4, num_classes: int = 5, width: int = 16
    ) -> None:
        super().__init__()
        self.stem = _conv_bn(in_channels, width)
        self.grouped = _conv_bn(width, width, groups=groups)
        self.grouped_pw = nn.Conv2d(width, 24, 1, groups=groups)
        self.pw = _conv_bn(24, 12, k=1)
        self.head = nn.Linear(12, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.stem(x))
        y = torch.relu(self.grouped(s) + s)
        y = torch.relu(self.pw(torch.relu(self.grouped_pw(y))))
        return self.head(y.mean((2, 3)))


class GroupedEdgeCNN(nn.Module):
    """Grouped convs that cannot shrink correctly: their channel groups must be excluded.

    A concat feeding a grouped conv (each branch is only part of its input), a depthwise
    conv with a channel multiplier (needs every input channel) and a conv with
    ``groups == out_channels < in_channels`` (torch-pruning traces it as depthwise).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 5) -> None:
        super().__init__()
        self.stem = _conv_bn(in_channels, 8)
        self.branch_a = nn.Conv2d(8, 6, 3, padding=1)
        self.branch_b = nn.Conv2d(8, 10, 1)
        self.grouped = _conv_bn(16, 8, groups=4)
        self.multiplier = nn.Conv2d(8, 16, 3, padding=1, groups=8)
        self.squeeze = nn.Conv2d(16, 4, 1, groups=4)
        self.pw = nn.Conv2d(4, 6, 1)
        self.head = nn.Linear(6, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.stem(x))
        y = torch.cat([torch.relu(self.branch_a(s)), torch.relu(self.branch_b(s))], dim=1)
        y = torch.relu(self.multiplier(torch.relu(self.grouped(y))))
        y = torch.relu(self.pw(torch.relu(self.squeeze(y))))
        return self.head(y.mean((2, 3)))


class DepthwiseCNN(nn.Module):
    """MobileNetV1-style depthwise-separable stack, one stride-2 depthwise conv."""

    def __init__(self, in_channels: int = 3, num_classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(in_channels, 8), nn.ReLU(),
            _conv_bn(8, 8, groups=8), nn.ReLU(),
            _conv_bn(8, 16, k=1), nn.ReLU(),
            _conv_bn(16, 16, stride=2, groups=16), nn.ReLU(),
            nn.Conv2d(16, 12, 1), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(12, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


class ConcatCNN(nn.Module):
    """Three-branch concat plus a dense-style concat that passes its input through."""

    def __init__(self, in_channels: int = 3, num_classes: int = 5) -> None:
        super().__init__()
        self.stem = _conv_bn(in_channels, 8)
        self.a = nn.Conv2d(8, 4, 1)
        self.b = _conv_bn(8, 6)
        self.c = nn.Conv2d(8, 5, 3, padding=1, bias=False)
        self.merge = _conv_bn(15, 10, k=1)
        self.grow = nn.Conv2d(10, 6, 3, padding=1)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.stem(x))
        y = torch.cat([torch.relu(self.a(s)), torch.relu(self.b(s)), torch.relu(self.c(s))], 1)
        y = torch.relu(self.merge(y))
        y = torch.cat([y, torch.relu(self.grow(y))], 1)
        return self.head(y.mean((2, 3)))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand 1x1, depthwise 3x3, linear project 1x1, residual if it fits."""

    def __init__(self, cin: int, cout: int, expand: int = 3, stride: int = 1) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = _conv_bn(cin, hidden, k=1)
        self.dw = _conv_bn(hidden, hidden, stride=stride, groups=hidden)
        self.project = _conv_bn(hidden, cout, k=1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(nn.functional.relu6(self.dw(nn.functional.relu6(self.expand(x)))))
        return x + y if self.residual else y


class InvertedResidualCNN(nn.Module):
    """Stem, two residual inverted-residual blocks, a strided one, 1x1 head conv."""

    def __init__(self, in_channels: int = 3, num_classes: int = 5) -> None:
        super().__init__()
        self.stem = _conv_bn(in_channels, 8)
        self.blocks = nn.Sequential(
            InvertedResidual(8, 8), InvertedResidual(8, 8), InvertedResidual(8, 12, stride=2)
        )
        self.last = _conv_bn(12, 16, k=1)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.blocks(nn.functional.relu6(self.stem(x)))
        return self.head(nn.functional.relu6(self.last(y)).mean((2, 3)))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: view, transpose, view."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


class ShuffleCNN(nn.Module):
    """conv(16) -> ReLU -> channel shuffle (2 groups) -> conv -> linear (igcv3, shufflenet)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 8, 3, padding=1)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = channel_shuffle(torch.relu(self.conv1(x)), 2)
        return self.head(torch.relu(self.conv2(y)).mean((2, 3)))


class GhostCNN(nn.Module):
    """GhostNet's ghost module in a residual: ``cat([x, dw(x)])`` ties channel c to c + 8."""

    def __init__(self, in_channels: int = 3, num_classes: int = 5) -> None:
        super().__init__()
        self.stem = _conv_bn(in_channels, 16)
        self.primary = _conv_bn(16, 8, k=1)
        self.cheap = _conv_bn(8, 8, groups=8)
        self.last = _conv_bn(16, 12, k=1)
        self.head = nn.Linear(12, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.stem(x))
        p = torch.relu(self.primary(s))
        y = torch.cat([p, torch.relu(self.cheap(p))], 1) + s
        return self.head(torch.relu(self.last(y)).mean((2, 3)))


class MaskedConv2d(nn.Conv2d):
    """A conv with a weight mask Parameter of its own (pytorchcv's XConv2d)."""

    def __init__(self, *args: int, **kwargs: int) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        mask = (torch.rand(self.weight.shape) > 0.3).float()
        self.mask = nn.Parameter(mask, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


class MaskedConvCNN(nn.Module):
    """A masked conv between two plain ones: only the last group can be pruned."""

    def __init__(self, in_channels: int = 3, num_classes: int = 5) -> None:
        super().__init__()
        self.stem = _conv_bn(in_channels, 8)
        self.masked = MaskedConv2d(8, 12, 3, padding=1)
        self.pw = _conv_bn(12, 10, k=1)
        self.head = nn.Linear(10, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.masked(torch.relu(self.stem(x))))
        return self.head(torch.relu(self.pw(y)).mean((2, 3)))


class SplitConv(nn.Module):
    """geffnet's MixedConv2d: stored split sizes, one depthwise conv per split, concat."""

    def __init__(self, channels: int, kernels: tuple[int, ...] = (3, 5)) -> None:
        super().__init__()
        n = len(kernels)
        self.splits = [channels // n + (i < channels % n) for i in range(n)]
        self.convs = nn.ModuleList(
            nn.Conv2d(c, c, k, padding=k // 2, groups=c)
            for c, k in zip(self.splits, kernels, strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.splits, 1)
        return torch.cat([conv(p) for conv, p in zip(self.convs, parts, strict=True)], 1)


class SplitConvCNN(nn.Module):
    """A MixedConv2d-style layer between two plain convs."""

    def __init__(self, in_channels: int = 3, num_classes: int = 5) -> None:
        super().__init__()
        self.stem = _conv_bn(in_channels, 8)
        self.mixed = SplitConv(8)
        self.pw = _conv_bn(8, 12, k=1)
        self.head = nn.Linear(12, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.mixed(torch.relu(self.stem(x))))
        return self.head(torch.relu(self.pw(y)).mean((2, 3)))


class ChunkShuffleCNN(nn.Module):
    """A ShuffleNetV2 unit: chunk, one branch, concat, channel shuffle."""

    def __init__(self, in_channels: int = 3, num_classes: int = 5) -> None:
        super().__init__()
        self.stem = _conv_bn(in_channels, 16)
        self.branch = _conv_bn(8, 8, k=1)
        self.last = _conv_bn(16, 12, k=1)
        self.head = nn.Linear(12, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.relu(self.stem(x)).chunk(2, dim=1)
        y = channel_shuffle(torch.cat([a, torch.relu(self.branch(b))], 1), 2)
        return self.head(torch.relu(self.last(y)).mean((2, 3)))


class PaddedShortcutCNN(nn.Module):
    """PyramidNet's residual: the shortcut is zero-padded from 8 to 12 channels."""

    def __init__(self, in_channels: int = 3, num_classes: int = 5) -> None:
        super().__init__()
        self.stem = _conv_bn(in_channels, 8)
        self.body = _conv_bn(8, 12)
        self.last = _conv_bn(12, 10, k=1)
        self.head = nn.Linear(10, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.stem(x))
        y = torch.relu(self.body(s) + nn.functional.pad(s, (0, 0, 0, 0, 0, 4)))
        return self.head(torch.relu(self.last(y)).mean((2, 3)))


def _zoo(name: str) -> Callable[[int], nn.Module]:
    return lambda c: create_model(name, num_classes=5, in_channels=c, width_mult=0.25)


NETS: dict[str, Callable[[int], nn.Module]] = {
    "vgg": _zoo("test_vgg"),
    "resnet": _zoo("test_resnet"),
    "grouped2": lambda c: GroupedCNN(c, groups=2),
    "grouped4": lambda c: GroupedCNN(c, groups=4),
    "grouped_edge": GroupedEdgeCNN,
    "depthwise": DepthwiseCNN,
    "concat": ConcatCNN,
    "inverted_residual": InvertedResidualCNN,
    "user": lambda c: UserCNN(in_channels=c),
    "grouped4_w12": lambda c: GroupedCNN(c, groups=4, width=12),
    "shuffle": ShuffleCNN,
    "ghost": GhostCNN,
    "masked": MaskedConvCNN,
    "split": SplitConvCNN,
    "chunk_shuffle": ChunkShuffleCNN,
    "padded_shortcut": PaddedShortcutCNN,
}

UNSAFE = {
    "shuffle": {"conv1": "conv2 computes otherwise"},
    "masked": {
        "stem.0": "MaskedConv2d masked holds 'mask'",
        "masked": "MaskedConv2d masked holds 'mask'",
    },
    "split": {"stem.0": "the model fails in mixed (SplitConv): split_with_sizes"},
    "chunk_shuffle": {"stem.0": "torch-pruning leaves branch.0 with 0"},
    "padded_shortcut": {"body.0": "its channels 8-11 join only part of another conv group"},
}
"""The nets above whose groups must be excluded: group -> start of the reason."""


def build(name: str, in_channels: int, seed: int) -> nn.Module:
    """Model ``name`` with seeded weights and randomised BatchNorm, in eval mode."""
    torch.manual_seed(seed)
    return randomize_bn(NETS[name](in_channels), seed)


class _ShuffleUnit(nn.Module):
    """ShuffleNetV2's unit: split (or a strided copy), one branch, concat, shuffle."""

    def __init__(self, channels: int, down: bool) -> None:
        super().__init__()
        self.down = down
        half = channels if down else channels // 2
        self.branch = nn.Sequential(
            _conv_bn(half, half, k=1), nn.ReLU(), _conv_bn(half, half, groups=half),
            _conv_bn(half, half, k=1), nn.ReLU(),
        )  # fmt: skip
        if down:
            self.shortcut = nn.Sequential(
                _conv_bn(channels, channels, groups=channels), _conv_bn(channels, channels, k=1)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = (torch.relu(self.shortcut(x)), x) if self.down else x.chunk(2, dim=1)
        return channel_shuffle(torch.cat([a, self.branch(b)], 1), 2)


class ShuffleV2CNN(nn.Module):
    """A down unit and two plain units: torch-pruning 1.6 fails to trace it (a zero division)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 5) -> None:
        super().__init__()
        self.stem = _conv_bn(in_channels, 8)
        self.units = nn.Sequential(
            _ShuffleUnit(8, True), _ShuffleUnit(16, False), _ShuffleUnit(16, False)
        )
        self.last = _conv_bn(16, 12, k=1)
        self.head = nn.Linear(12, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.units(torch.relu(self.stem(x)))
        return self.head(torch.relu(self.last(y)).mean((2, 3)))
