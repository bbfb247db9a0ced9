"""Surgery is proven: the pruned model equals the original that ignores the removed channels."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from iaprune.errors import IAPruneError
from iaprune.models import create_model
from iaprune.pruning import Pruner, PruningSpec, apply_spec, find_groups
from tests.conftest import randomize_bn
from tests.pruning.equivalence import assert_equivalent
from tests.pruning.nets import NETS, build


@pytest.mark.parametrize("name", ["test_vgg", "test_resnet", "vgg16", "resnet18", "resnet56"])
@pytest.mark.parametrize("seed", [0, 1])
def test_zoo_pruned_equals_zeroed_original(name: str, seed: int) -> None:
    torch.manual_seed(seed)
    model = randomize_bn(create_model(name, num_classes=7, in_channels=3, width_mult=0.25), seed)
    x = torch.randn(4, 3, 16, 16)
    assert_equivalent(model, x, seed)


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)], ids=["3x32x32", "1x28x28"])
def test_pruned_equals_zeroed_original(name: str, shape: tuple[int, int, int]) -> None:
    """Random allowed keep counts on every layer type we accept, three seeds each."""
    for seed in range(3):
        model = build(name, shape[0], seed)
        assert_equivalent(model, torch.randn(2, *shape, generator=_gen(seed)), seed)


@pytest.mark.filterwarnings("error")  # no group falls back to L1
@pytest.mark.parametrize("name", sorted(NETS))
def test_group_importance_scores_every_layer_type(name: str) -> None:
    """torch-pruning's groups map every consumer (residual, grouped, concat) to the channels."""
    model = build(name, 3, 0)
    spec = assert_equivalent(
        model, torch.randn(2, 3, 32, 32, generator=_gen(0)), 0, None, "group_l1"
    )
    assert spec.kept_indices


def test_group_importance_drops_a_channel_no_consumer_reads() -> None:
    """Per-layer L1 keeps the largest filter; the group criterion sees nobody reads it."""
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    ).eval()
    with torch.no_grad():
        model[0].weight.copy_(
            torch.tensor([3.0, 1.0, 1.2, 1.1]).view(4, 1, 1, 1).expand(4, 1, 3, 3)
        )
        model[2].weight.fill_(1.0)
        model[2].weight[:, 0] = 0.0  # channel 0 of the first conv feeds nothing
    x = torch.randn(1, 1, 8, 8)
    assert Pruner(model, x, importance="l1").spec({"0": 3}).kept_indices["0"] == [0, 2, 3]
    assert Pruner(model, x).spec({"0": 3}).kept_indices["0"] == [1, 2, 3]  # group_l1, the default


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_grouped_conv_keeps_the_same_positions_in_every_conv_group() -> None:
    """The best filters all sit in the first two of four conv groups: still equivalent.

    Before the fix the top-8 filters (0..7) were kept, torch-pruning gave the grouped conv
    the input weights of positions 0 and 1 in every group, and the pruned model silently
    computed something else.
    """
    model = build("grouped4", 3, seed=0)
    with torch.no_grad():
        model.stem[0].weight[:8] *= 10
    spec = assert_equivalent(
        model, torch.randn(2, 3, 16, 16, generator=_gen(0)), keep={"stem.0": 8}
    )
    kept = spec.kept_indices["stem.0"]
    assert [sum(i // 4 == j for i in kept) for j in range(4)] == [2, 2, 2, 2]


def test_user_cnn_pruned_equals_zeroed_original(user_cnn: nn.Module) -> None:
    x = torch.randn(3, 3, 12, 12)
    for seed in range(3):
        assert_equivalent(user_cnn, x, seed)


def test_original_model_is_not_modified(user_cnn: nn.Module) -> None:
    x = torch.randn(2, 3, 8, 8)
    before = {k: v.clone() for k, v in user_cnn.state_dict().items()}
    pruner = Pruner(user_cnn, x[:1])
    pruner.prune({g.name: 1 for g in pruner.groups})
    for k, v in user_cnn.state_dict().items():
        assert torch.equal(v, before[k])


def test_resnet_groups_couple_residual_convs() -> None:
    model = create_model("resnet34", width_mult=0.125)
    groups = find_groups(model, torch.randn(1, 3, 16, 16))
    # 16 block-internal convs + one group per stage joined by residual adds.
    assert len(groups) == 20
    stage2 = next(g for g in groups if "layer2.0.downsample.0" in g.convs)
    assert set(stage2.convs) == {
        "layer2.0.conv2",
        "layer2.0.downsample.0",
        "layer2.1.conv2",
        "layer2.2.conv2",
        "layer2.3.conv2",
    }


def test_rebuild_from_spec_without_indices(user_cnn: nn.Module) -> None:
    x = torch.randn(2, 3, 8, 8)
    pruner = Pruner(user_cnn, x[:1])
    spec = pruner.spec({g.name: max(1, g.channels // 2) for g in pruner.groups})
    pruned = pruner.prune(spec).eval()
    shape_only = PruningSpec.from_dict({"keep": spec.keep, "original": spec.original})
    rebuilt = apply_spec(user_cnn, x[:1], shape_only).eval()
    rebuilt.load_state_dict(pruned.state_dict())
    torch.testing.assert_close(rebuilt(x), pruned(x))


def test_spec_json_roundtrip(tmp_path, user_cnn: nn.Module) -> None:
    pruner = Pruner(user_cnn, torch.randn(1, 3, 8, 8))
    spec = pruner.spec({g.name: 2 for g in pruner.groups})
    spec.save(tmp_path / "spec.json")
    assert PruningSpec.load(tmp_path / "spec.json") == spec


def test_never_prunes_to_zero_or_above_width() -> None:
    with pytest.raises(IAPruneError, match="outside"):
        PruningSpec(keep={"a": 0}, original={"a": 4})
    with pytest.raises(IAPruneError, match="outside"):
        PruningSpec(keep={"a": 5}, original={"a": 4})


def test_model_without_prunable_conv() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(IAPruneError, match="no prunable conv"):
        find_groups(model, torch.randn(1, 3, 2, 2))


def test_classifier_conv_is_not_pruned() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 5, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    groups = find_groups(model, torch.randn(1, 3, 8, 8))
    assert [g.name for g in groups] == ["0"]


def test_mismatched_spec_is_rejected(user_cnn: nn.Module) -> None:
    spec = PruningSpec(keep={"stem": 2}, original={"stem": 16})
    with pytest.raises(IAPruneError, match="spec expects 16"):
        apply_spec(user_cnn, torch.randn(1, 3, 8, 8), spec)


class _WithAuxHead(nn.Module):
    """A conv the forward pass never calls (an auxiliary head used only in training)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.aux = nn.Conv2d(8, 8, 3)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean((2, 3)))


def test_a_conv_forward_never_calls_is_excluded_not_a_key_error() -> None:
    model, x = _WithAuxHead().eval(), torch.randn(2, 3, 8, 8)
    pruner = Pruner(model, x[:1])
    assert [g.name for g in pruner.groups] == ["conv"]
    assert [(e.name, e.reason) for e in pruner.excluded] == [("aux", "not used by forward")]
    pruned = pruner.prune({"conv": 5})
    assert pruned.conv.out_channels == 5 and pruned.aux.out_channels == 8
    assert pruned(x).shape == (2, 4)
