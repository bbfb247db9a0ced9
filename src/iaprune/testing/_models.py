"""Tiny seeded models and state snapshots shared by the contract suites."""

from __future__ import annotations

import torch
from torch import nn

from iaprune.models import create_model

State = tuple[dict[str, torch.Tensor], dict[str, bool]]


def tiny_model(in_channels: int = 1) -> nn.Module:
    """``test_resnet`` with non-trivial BatchNorm statistics and mixed ``training`` flags.

    The model is in train mode except its first BatchNorm (in eval mode), so a suite can
    see whether an implementation restores every submodule's own flag.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = create_model("test_resnet", num_classes=4, in_channels=in_channels)
        gen = torch.Generator().manual_seed(0)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
    model.train()
    next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d)).eval()
    return model


def snapshot(model: nn.Module) -> State:
    """Cloned parameters and buffers, and every submodule's ``training`` flag."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    flags = {name: m.training for name, m in model.named_modules()}
    return state, flags


def assert_unchanged(model: nn.Module, before: State) -> None:
    """``model`` has the parameters, buffers, devices and ``training`` flags of ``before``."""
    state, flags = snapshot(model)
    assert state.keys() == before[0].keys()
    for key, value in state.items():
        assert value.device == before[0][key].device, key
        assert torch.equal(value, before[0][key]), key
    assert flags == before[1]
