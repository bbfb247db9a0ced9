"""MACs, parameter counts and the activation-memory estimate against hand computation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from iaprune.cost import count_macs, count_params, peak_activation_bytes
from iaprune.errors import IAPruneError


def tiny_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),  # 1x8x8 -> 4x8x8
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1),  # 4x8x8 -> 6x4x4
        nn.AdaptiveAvgPool2d(1),  # -> 6x1x1
        nn.Flatten(),  # -> 6
        nn.Linear(6, 10),
    )


def test_tiny_net_macs_match_hand_count() -> None:
    conv1 = 8 * 8 * 4 * 1 * 9  # out H*W * out_ch * in_ch * k*k
    conv2 = 4 * 4 * 6 * 4 * 9
    fc = 6 * 10
    assert count_macs(tiny_net(), (1, 8, 8)) == conv1 + conv2 + fc == 5820


def test_tiny_net_params_match_hand_count() -> None:
    conv1 = 4 * 1 * 3 * 3 + 4
    bn = 4 + 4  # weight + bias (running stats are buffers)
    conv2 = 6 * 4 * 3 * 3 + 6
    fc = 6 * 10 + 10
    assert count_params(tiny_net()) == conv1 + bn + conv2 + fc == 340


def test_grouped_and_bias_free_conv() -> None:
    conv = nn.Conv2d(4, 8, 3, padding=1, groups=2, bias=False)  # 4x5x5 -> 8x5x5
    assert count_macs(conv, (4, 5, 5)) == 5 * 5 * 8 * (4 // 2) * 9 == 3600
    assert count_params(conv) == 8 * (4 // 2) * 9 == 144


def test_depthwise_conv() -> None:
    conv = nn.Conv2d(4, 4, 3, groups=4, bias=False)  # 4x6x6 -> 4x4x4 (no padding)
    assert count_macs(conv, (4, 6, 6)) == 4 * 4 * 4 * 1 * 9 == 576
    assert count_params(conv) == 4 * 1 * 9 == 36


def test_depthwise_separable_block() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False),  # 3x4x4 -> 3x4x4
        nn.Conv2d(3, 5, 1),  # pointwise -> 5x4x4
    )
    assert count_macs(net, (3, 4, 4)) == 4 * 4 * 3 * 1 * 9 + 4 * 4 * 5 * 3 * 1
    assert count_params(net) == 3 * 9 + (5 * 3 + 5)


def test_linear_counts_every_row() -> None:
    fc = nn.Linear(5, 3)
    assert count_macs(fc, (2, 5)) == 2 * 5 * 3


def test_module_called_twice_is_counted_twice() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.fc(x))

    net = Twice()
    assert count_macs(net, (4,)) == 2 * 4 * 4
    assert count_params(net) == 4 * 4 + 4


def test_shared_parameters_counted_once() -> None:
    fc = nn.Linear(3, 3)
    assert count_params(nn.Sequential(fc, fc)) == 3 * 3 + 3


def test_training_flags_and_buffers_restored() -> None:
    net = tiny_net()
    net.train()
    net[1].eval()  # mixed flags must come back exactly
    stats = net[1].running_mean.clone()
    count_macs(net, (1, 8, 8))
    peak_activation_bytes(net, (1, 8, 8))
    assert net.training
    assert [m.training for m in net] == [True, False, True, True, True, True, True]
    assert torch.equal(net[1].running_mean, stats)
    assert all(p.grad is None for p in net.parameters())


def test_bad_input_shape_is_user_error() -> None:
    with pytest.raises(IAPruneError):
        count_macs(tiny_net(), (1, 0, 8))


def act_net(inplace: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1),  # 1x4x4 -> 2x4x4
        nn.ReLU(inplace=inplace),
        nn.Conv2d(2, 3, 3, stride=2, padding=1),  # 2x4x4 -> 3x2x2
    )


def test_activation_estimate_matches_hand_count() -> None:
    conv1 = 1 * 4 * 4 + 2 * 4 * 4  # input + output elements
    relu = 2 * 4 * 4 + 2 * 4 * 4
    conv2 = 2 * 4 * 4 + 3 * 2 * 2
    expected = max(conv1, relu, conv2) * 4  # float32
    assert expected == 256
    assert peak_activation_bytes(act_net(inplace=False), (1, 4, 4)) == expected
    assert peak_activation_bytes(act_net(inplace=False), (1, 4, 4), dtype_bytes=2) == 128


def test_activation_estimate_counts_inplace_once() -> None:
    conv1 = 1 * 4 * 4 + 2 * 4 * 4
    relu = 2 * 4 * 4  # in-place: input and output are the same storage
    conv2 = 2 * 4 * 4 + 3 * 2 * 2
    assert peak_activation_bytes(act_net(inplace=True), (1, 4, 4)) == max(conv1, relu, conv2) * 4


def test_activation_estimate_single_leaf() -> None:
    conv = nn.Conv2d(2, 3, 1)  # the model itself is the only leaf
    assert peak_activation_bytes(conv, (2, 5, 5)) == (2 * 25 + 3 * 25) * 4
