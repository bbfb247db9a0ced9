"""Every latency backend: result structure, model and global state untouched, registry errors.

No timing thresholds: only positivity, finiteness and an order-of-magnitude agreement
with eager torch (a ratio between 1/100 and 100), which any working runtime meets.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest
import torch
from torch import nn

from iaprune.cost.latency import (
    LatencyResult,
    OnnxRuntimeBackend,
    TorchCompileBackend,
    default_round_to,
    get_backend,
    list_backends,
)
from iaprune.errors import IAPruneError, MissingDependencyError
from iaprune.models import create_model
from tests.conftest import randomize_bn

INPUT_SHAPE = (1, 16, 16)
BATCH = 4
ENV_KEYS = {"backend", "version", "threads", "device", "batch_size", "input_shape"}
FAST_BACKENDS = [
    n for n in list_backends(available_only=True) if n not in ("torch-compile", "cuda")
]
"""Available CPU backends timed in the shared test (torch-compile and cuda have their own)."""


def _tiny_model() -> nn.Module:
    """test_resnet with non-trivial BN, mixed ``training`` flags (train, one block in eval)."""
    torch.manual_seed(0)
    model = randomize_bn(create_model("test_resnet", num_classes=4, in_channels=1))
    model.train()
    next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d)).eval()
    return model


def _snapshot(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, bool]]:
    """Cloned parameters and buffers, and every submodule's ``training`` flag."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    flags = {name: m.training for name, m in model.named_modules()}
    return state, flags


def _assert_unchanged(
    model: nn.Module, before: tuple[dict[str, torch.Tensor], dict[str, bool]]
) -> None:
    state, flags = _snapshot(model)
    assert state.keys() == before[0].keys()
    for key, value in state.items():
        assert value.device == before[0][key].device, key
        assert torch.equal(value, before[0][key]), key
    assert flags == before[1]


def _assert_valid_result(
    result: LatencyResult, backend: str, *, repeats: int, batch_size: int
) -> None:
    assert len(result.runs_ms) == repeats
    assert all(math.isfinite(r) and r > 0 for r in result.runs_ms)
    assert math.isfinite(result.median_ms) and result.median_ms > 0
    assert math.isfinite(result.spread_ms) and result.spread_ms >= 0
    assert min(result.runs_ms) <= result.median_ms <= max(result.runs_ms)
    assert result.env.keys() >= ENV_KEYS
    assert result.env["backend"] == backend
    assert isinstance(result.env["version"], str) and result.env["version"]
    assert result.env["batch_size"] == batch_size
    assert result.env["input_shape"] == list(INPUT_SHAPE)
    assert result.env["repeats"] == repeats


@pytest.fixture
def other_threads() -> Iterator[int]:
    """A thread count different from torch's current one; the setting is restored after."""
    before = torch.get_num_threads()
    yield 2 if before == 1 else 1
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def eager_ms() -> float:
    """Median eager-torch latency of the tiny model, the reference for every backend."""
    result = get_backend("torch").measure(
        _tiny_model(), INPUT_SHAPE, batch_size=BATCH, warmup=2, repeats=5
    )
    return result.median_ms


def test_cpu_backends_are_available() -> None:
    assert {"torch", "torchscript"} <= set(FAST_BACKENDS)
    assert set(list_backends(available_only=True)) <= set(list_backends())
    assert {"torch", "torchscript", "torch-compile", "onnxruntime", "cuda"} <= set(list_backends())


# The checks every backend must pass (result structure, environment, model, RNG and
# threads untouched, invalid settings and shapes rejected) are the contract suite
# iaprune.testing.latency.LatencyBackendSuite, run in test_contracts.py.


@pytest.mark.skipif(not OnnxRuntimeBackend.available(), reason="needs iaprune[deploy]")
def test_onnxruntime_backend_details() -> None:
    """threads=None means one ORT thread; only the CPU provider is supported."""
    result = get_backend("onnxruntime").measure(
        _tiny_model(), INPUT_SHAPE, threads=None, warmup=0, repeats=2
    )
    assert result.env["threads"] == 1
    assert result.env["provider"] == "CPUExecutionProvider"
    assert result.env["version"] == importlib.import_module("onnxruntime").__version__
    with pytest.raises(IAPruneError, match="cpu"):
        get_backend("onnxruntime").measure(_tiny_model(), INPUT_SHAPE, device="cuda", repeats=1)


@pytest.mark.skipif(not TorchCompileBackend.available(), reason="needs a C++ compiler")
def test_torch_compile_backend(other_threads: int, eager_ms: float) -> None:
    model = _tiny_model()
    before = _snapshot(model)
    threads_before = torch.get_num_threads()
    result = get_backend("torch-compile").measure(
        model, INPUT_SHAPE, batch_size=BATCH, threads=other_threads, warmup=1, repeats=2
    )
    _assert_valid_result(result, "torch-compile", repeats=2, batch_size=BATCH)
    assert result.env["threads"] == other_threads
    assert result.env["device"] == "cpu"
    assert 1 / 100 <= result.median_ms / eager_ms <= 100
    _assert_unchanged(model, before)
    assert torch.get_num_threads() == threads_before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_backend() -> None:
    model = _tiny_model()
    before = _snapshot(model)
    result = get_backend("cuda").measure(model, INPUT_SHAPE, batch_size=BATCH, warmup=2, repeats=5)
    _assert_valid_result(result, "cuda", repeats=5, batch_size=BATCH)
    assert str(result.env["device"]).startswith("cuda")
    assert result.env["threads"] is None
    _assert_unchanged(model, before)  # the copy went to the GPU, the model stayed on the CPU
    assert "cuda" in list_backends(available_only=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_backend_unavailable_without_gpu() -> None:
    assert "cuda" not in list_backends(available_only=True)
    with pytest.raises(IAPruneError, match="CUDA GPU") as info:
        get_backend("cuda")
    assert "available backends: " in str(info.value)
    assert "torch" in str(info.value).split("available backends: ")[1]


def test_default_round_to() -> None:
    assert default_round_to("onnxruntime") == 16
    assert default_round_to("torch") == 8
    assert default_round_to("cuda") == 32  # read from the class: no GPU needed
    assert default_round_to("torchscript") == 8
    with pytest.raises(IAPruneError, match="unknown latency backend"):
        default_round_to("nope")


def test_unknown_backend_lists_every_valid_name() -> None:
    with pytest.raises(IAPruneError, match="unknown latency backend 'tensorrt-x'") as info:
        get_backend("tensorrt-x")
    message = str(info.value)
    assert "\n" not in message
    for name in list_backends():
        assert name in message


def test_missing_onnxruntime_is_a_missing_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] == "onnxruntime":
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert not OnnxRuntimeBackend.available()
    assert "onnxruntime" not in list_backends(available_only=True)
    assert "onnxruntime" in list_backends()
    with pytest.raises(MissingDependencyError) as info:
        get_backend("onnxruntime")
    message = str(info.value)
    assert "iaprune[deploy]" in message
    assert "onnxruntime" in message.split(":")[0]  # names the missing package
    assert "torch" in message.split("available backends: ")[1]
    assert default_round_to("onnxruntime") == 16  # availability is not checked


def test_require_onnxruntime_raises_when_not_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    from iaprune.convert import require_onnx, require_onnxruntime

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"onnxruntime.*iaprune\[deploy\]"):
        require_onnxruntime()
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(MissingDependencyError, match=r"onnx is required.*iaprune\[deploy\]"):
        require_onnx()


@pytest.mark.skipif(not OnnxRuntimeBackend.available(), reason="needs iaprune[deploy]")
def test_require_onnxruntime_returns_the_module() -> None:
    from iaprune.convert import require_onnxruntime

    module = require_onnxruntime()
    assert isinstance(module, ModuleType)
    assert module.__name__ == "onnxruntime"
