"""What torch-pruning cannot follow is excluded with a reason naming the layer (issue 23).

Minimal equivalents of third-party layers (tests/pruning/nets.py); the groups they leave
prunable are proven exact by the NETS-wide tests of test_surgery.py.
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from iaprune.errors import IAPruneError
from iaprune.pruning import Pruner, PruningSpec, apply_spec, find_groups
from iaprune.pruning.groups import scan_groups
from tests.pruning.equivalence import assert_equivalent
from tests.pruning.nets import UNSAFE, MaskedConv2d, ShuffleV2CNN, build

X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", sorted(UNSAFE))
def test_groups_torch_pruning_gets_wrong_are_excluded_naming_the_layer(name: str) -> None:
    pruner = Pruner(build(name, 3, seed=0), X[:1])
    reasons = {e.name: e.reason for e in pruner.excluded}
    assert set(reasons) == set(UNSAFE[name])
    for group, reason in UNSAFE[name].items():
        assert reason in reasons[group]
        assert "\n" not in reasons[group]
    assert not set(reasons) & {g.name for g in pruner.groups}


def test_channel_shuffle_spec_is_refused_instead_of_silently_wrong() -> None:
    """The issue's minimal case: conv(16) -> shuffle(2) -> conv, keep 10 differed by 0.03."""
    model = build("shuffle", 3, seed=0)
    spec = PruningSpec(keep={"conv1": 10}, original={"conv1": 16})
    with pytest.raises(IAPruneError, match="'conv1' cannot be pruned: pruned, conv2 computes"):
        apply_spec(model, X[:1], spec)
    assert [g.name for g in find_groups(model, X[:1])] == ["conv2"]


def test_ghost_module_prunes_pairs_of_channels() -> None:
    """Channel c and c + 8 come from one filter: keep counts are even and honoured."""
    model = build("ghost", 3, seed=0)
    pruner = Pruner(model, X[:1])
    stem = next(g for g in pruner.groups if g.name == "stem.0")
    assert (stem.channels, stem.multiple) == (16, 2)
    with pytest.raises(IAPruneError, match="keep 3 is not a multiple of 2"):
        pruner.prune({"stem.0": 3})
    spec = assert_equivalent(model, X, keep={"stem.0": 6})
    kept = spec.kept_indices["stem.0"]
    assert [i for i in kept if i < 8] == [i - 8 for i in kept if i >= 8]
    pruned = pruner.prune(spec)
    assert pruned.stem[0].out_channels == 6 and pruned.primary[0].out_channels == 3
    shape_only = PruningSpec(keep=spec.keep, original=spec.original)
    rebuilt = apply_spec(model, X[:1], shape_only)  # what load_pruned does
    rebuilt.load_state_dict(pruned.state_dict())
    smallest = pruner.prune({"stem.0": 2})
    assert all(p.numel() > 0 for p in smallest.parameters())


def test_module_with_channel_sized_state_is_refused_naming_it() -> None:
    """Nothing left to prune: one line naming the layer and its tensor."""
    model = nn.Sequential(
        MaskedConv2d(3, 8, 3), nn.ReLU(), MaskedConv2d(8, 4, 3), nn.Flatten(), nn.LazyLinear(2)
    )
    model(X)
    with pytest.raises(IAPruneError) as info:
        Pruner(model.eval(), X[:1])
    message = str(info.value)
    assert "no prunable conv" in message and "\n" not in message
    assert "MaskedConv2d 0 holds 'mask' of shape (8, 3, 3, 3)" in message


def test_tracing_error_names_the_layer() -> None:
    """ShuffleNetV2: torch-pruning divides by zero at a shuffle's view."""
    with pytest.raises(IAPruneError) as info:
        Pruner(ShuffleV2CNN().eval(), X[:1])
    message = str(info.value)
    assert "at the View op after units.0.shortcut.1.1" in message
    assert "integer division or modulo by zero" in message and "\n" not in message


def test_channels_in_no_group_are_reported() -> None:
    """PyramidNet: channels 8-11 of body.0 meet only the zero padding of the shortcut."""
    model = build("padded_shortcut", 3, seed=0)
    groups, excluded = scan_groups(model, X[:1])
    assert [(g.name, g.channels) for g in groups] == [("stem.0", 8), ("last.0", 10)]
    assert [(e.name, e.channels) for e in excluded] == [("body.0", 4)]
    assert "channels 8-11 join only part of another conv group" in excluded[0].reason


def test_verification_keeps_every_correct_group_and_logs_few_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from iaprune.pruning import verify_groups

    model = build("resnet", 3, seed=0)
    groups, excluded = scan_groups(model, X[:1])
    assert verify_groups(model, X[:1], groups, excluded) == (groups, excluded)
    with caplog.at_level(logging.INFO, logger="iaprune.pruning.groups"):
        Pruner(build("masked", 3, seed=0), X[:1])
    assert len(caplog.records) == 2


class _Float32Only(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32:
            raise TypeError("float32 only")
        return x


def test_model_that_cannot_run_in_float64_is_checked_in_float32() -> None:
    model = build("shuffle", 3, seed=0)
    model.conv1 = nn.Sequential(model.conv1, _Float32Only())
    pruner = Pruner(model, X[:1])
    assert [e.name for e in pruner.excluded] == ["conv1.0"]
    assert [g.name for g in pruner.groups] == ["conv2"]
