"""Tests for the model zoo (iaprune.models)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from iaprune.errors import IAPruneError
from iaprune.models import create_model, list_models, register_model, scaled_channels

torch.set_num_threads(2)

# Big models are tested narrow so the whole file stays fast on CPU.
SMALL_WIDTH = {
    "resnet18": 0.125,
    "resnet34": 0.125,
    "resnet56": 0.25,
    "vgg11": 0.125,
    "vgg16": 0.125,
    "resnet18_imagenet": 0.125,
    "resnet34_imagenet": 0.125,
    "vgg16_imagenet": 0.0625,
}
EXPECTED_MODELS = {
    "resnet18",
    "resnet34",
    "resnet56",
    "test_resnet",
    "resnet18_imagenet",
    "resnet34_imagenet",
    "vgg11",
    "vgg16",
    "test_vgg",
    "vgg16_imagenet",
}


def _sizes(name: str) -> list[int]:
    return [64] if name.endswith("_imagenet") else [8, 28, 32]


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_expected_models_registered() -> None:
    assert EXPECTED_MODELS.issubset(list_models())
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("in_channels", [1, 3])
def test_forward_shapes(name: str, in_channels: int) -> None:
    model = create_model(
        name, num_classes=7, in_channels=in_channels, width_mult=SMALL_WIDTH.get(name, 1.0)
    )
    model.eval()
    with torch.no_grad():
        for size in _sizes(name):
            out = model(torch.randn(2, in_channels, size, size))
            assert out.shape == (2, 7), (name, size)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["test_vgg", "test_resnet"])
def test_train_step_backward(name: str) -> None:
    model = create_model(name, num_classes=3)
    out = model(torch.randn(4, 3, 8, 8))
    nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 0])).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(IAPruneError) as exc:
        create_model("resnet9000")
    msg = str(exc.value)
    assert "resnet9000" in msg
    assert "\n" not in msg
    for name in list_models():
        assert name in msg


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_classes": 0},
        {"num_classes": 2.5},
        {"in_channels": 0},
        {"in_channels": True},
        {"width_mult": 0.0},
        {"width_mult": -1.0},
        {"width_mult": float("nan")},
        {"width_mult": float("inf")},
    ],
)
def test_invalid_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(IAPruneError) as exc:
        create_model("test_vgg", **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(exc.value)


def test_scaled_channels() -> None:
    assert scaled_channels(64, 1.0) == 64
    assert scaled_channels(64, 0.5) == 32
    assert scaled_channels(64, 0.3) == 19
    assert scaled_channels(16, 0.01) == 1


def _conv_out_channels(model: nn.Module) -> list[int]:
    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize(
    ("name", "mult"),
    [("resnet56", 0.5), ("vgg16", 0.25), ("resnet18", 0.125), ("test_vgg", 2.0)],
)
def test_width_mult_scales_convs(name: str, mult: float) -> None:
    full = _conv_out_channels(create_model(name))
    scaled = _conv_out_channels(create_model(name, width_mult=mult))
    assert scaled == [max(1, round(c * mult)) for c in full]


def test_vgg16_widths() -> None:
    model = create_model("vgg16", num_classes=10)
    assert _conv_out_channels(model) == [64, 64, 128, 128, 256, 256, 256] + [512] * 6
    assert isinstance(model.classifier, nn.Linear)
    assert model.classifier.in_features == 512


def test_test_resnet_has_downsample_and_identity_blocks() -> None:
    model = create_model("test_resnet")
    assert model.layer1[0].downsample is None
    assert isinstance(model.layer2[0].downsample, nn.Sequential)
    assert model.layer2[1].downsample is None


def test_resnet56_param_count() -> None:
    def conv(cin: int, cout: int, k: int) -> int:
        return cin * cout * k * k

    def bn(c: int) -> int:
        return 2 * c

    def block(cin: int, cout: int) -> int:
        n = conv(cin, cout, 3) + bn(cout) + conv(cout, cout, 3) + bn(cout)
        if cin != cout:  # option-B shortcut
            n += conv(cin, cout, 1) + bn(cout)
        return n

    expected = conv(3, 16, 3) + bn(16)
    cin = 16
    for width in (16, 32, 64):
        for _ in range(9):
            expected += block(cin, width)
            cin = width
    expected += 64 * 10 + 10
    assert expected == 855_770
    model = create_model("resnet56", num_classes=10)
    assert _n_params(model) == expected
    depth = 1 + 2 * 27 + 1  # stem conv + 2 convs per block + fc
    assert depth == 56


def _bn_keys(prefix: str) -> list[str]:
    return [f"{prefix}.{s}" for s in ("weight", "bias", "running_mean", "running_var")] + [
        f"{prefix}.num_batches_tracked"
    ]


def torchvision_vgg16_bn_keys() -> list[str]:
    """Keys of torchvision's vgg16_bn state dict, written from its known structure."""
    conv_idx = [0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40]
    keys: list[str] = []
    for i in conv_idx:
        keys += [f"features.{i}.weight", f"features.{i}.bias"]
        keys += _bn_keys(f"features.{i + 1}")
    for i in (0, 3, 6):
        keys += [f"classifier.{i}.weight", f"classifier.{i}.bias"]
    return keys


def torchvision_resnet_keys(layers: list[int]) -> list[str]:
    """Keys of torchvision's BasicBlock ResNet state dict (resnet18/34)."""
    keys = ["conv1.weight", *_bn_keys("bn1")]
    for stage, n_blocks in enumerate(layers, start=1):
        for b in range(n_blocks):
            p = f"layer{stage}.{b}"
            keys += [f"{p}.conv1.weight", *_bn_keys(f"{p}.bn1")]
            keys += [f"{p}.conv2.weight", *_bn_keys(f"{p}.bn2")]
            if stage > 1 and b == 0:
                keys += [f"{p}.downsample.0.weight", *_bn_keys(f"{p}.downsample.1")]
    keys += ["fc.weight", "fc.bias"]
    return keys


def test_vgg16_bn_feature_indices() -> None:
    conv_bn = sorted(
        int(k.split(".")[1]) for k in torchvision_vgg16_bn_keys() if k.startswith("features.")
    )
    assert sorted(set(conv_bn)) == [
        0, 1, 3, 4, 7, 8, 10, 11, 14, 15, 17, 18, 20, 21,
        24, 25, 27, 28, 30, 31, 34, 35, 37, 38, 40, 41,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vgg16_imagenet", torchvision_vgg16_bn_keys()),
        ("resnet18_imagenet", torchvision_resnet_keys([2, 2, 2, 2])),
        ("resnet34_imagenet", torchvision_resnet_keys([3, 4, 6, 3])),
    ],
)
def test_imagenet_state_dict_keys_match_torchvision(name: str, expected: list[str]) -> None:
    model = create_model(name, num_classes=1000, width_mult=SMALL_WIDTH[name])
    keys = list(model.state_dict().keys())
    assert len(keys) == len(set(keys))
    assert set(keys) == set(expected)
    assert keys == expected  # same order as torchvision, too


def test_imagenet_full_width_shapes() -> None:
    # torchvision's parameter counts for 1000 classes: resnet34 21,797,672, vgg16_bn 138,365,992.
    model = create_model("resnet34_imagenet", num_classes=1000)
    assert _n_params(model) == 21_797_672
    assert model.conv1.weight.shape == (64, 3, 7, 7)
    assert model.layer2[0].downsample[0].weight.shape == (128, 64, 1, 1)
    sd = model.state_dict()
    model.load_state_dict(sd, strict=True)
    # vgg16_bn: count analytically instead of allocating 138M parameters.
    cfg = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    n, cin = 0, 3
    for c in cfg:
        n += cin * c * 9 + c + 2 * c
        cin = c
    n += 512 * 49 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    assert n == 138_365_992
    small = create_model("vgg16_imagenet", num_classes=1000, width_mult=0.0625)
    assert small.classifier[0].in_features == 32 * 7 * 7
    assert small.classifier[6].out_features == 1000


def test_state_dict_roundtrip_width_mult() -> None:
    a = create_model("test_resnet", num_classes=5, in_channels=1, width_mult=0.5)
    b = create_model("test_resnet", num_classes=5, in_channels=1, width_mult=0.5)
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.randn(2, 1, 28, 28)
    a.eval()
    b.eval()
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))


def test_init() -> None:
    model = create_model("test_resnet")
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1)
            assert torch.all(m.bias == 0)
    conv = model.layer1[0].conv1
    fan_out = conv.out_channels * 9
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.3)


def test_register_model_duplicate_rejected() -> None:
    with pytest.raises(ValueError):
        register_model("test_vgg")(lambda **_: nn.Identity())


@pytest.mark.parametrize("name", ["test_vgg", "test_resnet", "resnet56"])
def test_torch_pruning_compatible(name: str) -> None:
    tp = pytest.importorskip("torch_pruning")
    model = create_model(name, num_classes=4, width_mult=0.5)
    example = torch.randn(1, 3, 32, 32)
    final = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=0.5,
        ignored_layers=[final],
    )
    pruner.step()
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 8, 8)).shape == (2, 4)
    assert _n_params(model) < _n_params(create_model(name, num_classes=4, width_mult=0.5))
