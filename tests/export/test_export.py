"""Export to ONNX / TorchScript: round trips of pruned models, verification, CLI.

Pruned models have uneven widths (not multiples of 8); every exported file is reloaded
here with its own runtime and compared with eager torch on a fresh input whose batch size
differs from the one used to export (the batch axis is dynamic).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from iaprune.cli.main import main
from iaprune.errors import IAPruneError, MissingDependencyError
from iaprune.export import FORMATS, ExportResult, export_model
from iaprune.models import create_model
from iaprune.pruning import Pruner
from tests.conftest import randomize_bn

HAS_ORT = all(importlib.util.find_spec(p) is not None for p in ("onnx", "onnxruntime"))
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="needs iaprune[deploy] (onnx, onnxruntime)")
FORMAT_PARAMS = [pytest.param("onnx", marks=needs_ort), "torchscript"]
INPUT_SHAPE = (1, 16, 16)
SUFFIX = {"onnx": ".onnx", "torchscript": ".ts.pt"}


def _pruned(name: str) -> nn.Module:
    """``name`` from the zoo, BN randomised, pruned to uneven widths, left in train mode."""
    torch.manual_seed(0)
    model = randomize_bn(create_model(name, num_classes=4, in_channels=1))
    pruner = Pruner(model, torch.randn(1, *INPUT_SHAPE))
    keep = {g.name: max(1, g.channels - 1 - i % 3) for i, g in enumerate(pruner.groups)}
    pruned = pruner.prune(keep).train()
    widths = [m.out_channels for m in pruned.modules() if isinstance(m, nn.Conv2d)]
    assert any(w % 2 for w in widths), widths  # really uneven
    return pruned


def _eager(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Eager eval-mode output; the model's ``training`` flags are put back."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            return model(x).numpy()
    finally:
        for module, flag in flags:
            module.training = flag


def _fresh_input(batch: int, seed: int = 7) -> torch.Tensor:
    return torch.randn((batch, *INPUT_SHAPE), generator=torch.Generator().manual_seed(seed))


class Drifting(nn.Module):
    """Adds a Python-side call counter to its output: tracing bakes in the value it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x).mean((2, 3)) + float(self.calls)


@pytest.fixture
def restore_threads() -> Iterator[int]:
    """Torch's intra-op thread count before the test; restored after it either way."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


# -- export_model --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["test_vgg", "test_resnet"])
@pytest.mark.parametrize("fmt", FORMAT_PARAMS)
def test_export_round_trip(name: str, fmt: str, tmp_path: Path, restore_threads: int) -> None:
    model = _pruned(name)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: m.training for n, m in model.named_modules()}
    path = tmp_path / "sub" / f"model{SUFFIX[fmt]}"
    threads = 2 if restore_threads == 1 else 1

    res = export_model(
        model, INPUT_SHAPE, path, fmt, batch_size=2, threads=threads, warmup=1, repeats=3
    )

    assert isinstance(res, ExportResult)
    assert res.path == path and path.is_file() and path.stat().st_size > 0
    assert res.format == fmt
    assert 0.0 <= res.max_abs_diff <= 1e-4
    assert math.isfinite(res.latency_ms) and res.latency_ms > 0
    assert math.isfinite(res.latency_spread_ms) and res.latency_spread_ms >= 0
    assert res.env["batch_size"] == 2 and res.env["threads"] == threads
    assert res.env["input_shape"] == list(INPUT_SHAPE) and res.env["repeats"] == 3
    assert res.env["version"].startswith("onnxruntime " if fmt == "onnx" else "torch ")
    # the caller's model is untouched and the global thread count restored
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert {n: m.training for n, m in model.named_modules()} == flags
    assert torch.get_num_threads() == restore_threads


@needs_ort
@pytest.mark.parametrize("name", ["test_vgg", "test_resnet"])
def test_onnx_file_runs_with_another_batch_size(name: str, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    model = _pruned(name)
    path = tmp_path / "m.onnx"
    export_model(model, INPUT_SHAPE, path, "onnx", batch_size=1, warmup=0, repeats=1)

    onnx.checker.check_model(onnx.load(str(path)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert isinstance(inp.shape[0], str)  # symbolic batch axis
    assert inp.shape[1:] == list(INPUT_SHAPE)
    x = _fresh_input(5)
    (got,) = session.run(None, {inp.name: x.numpy()})
    expected = _eager(model, x)
    assert got.shape == expected.shape == (5, 4)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", ["test_vgg", "test_resnet"])
def test_torchscript_file_runs_with_another_batch_size(name: str, tmp_path: Path) -> None:
    model = _pruned(name)
    path = tmp_path / "m.ts.pt"
    export_model(model, INPUT_SHAPE, path, "torchscript", batch_size=1, warmup=0, repeats=1)

    loaded = torch.jit.load(str(path))
    x = _fresh_input(5)
    with torch.no_grad():
        got = loaded(x).numpy()
    expected = _eager(model, x)
    assert got.shape == expected.shape == (5, 4)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("fmt", FORMAT_PARAMS)
def test_output_mismatch_above_tolerance_is_an_error(fmt: str, tmp_path: Path) -> None:
    """Tracing freezes the counter, eager keeps counting: a deterministic difference >= 1."""
    torch.manual_seed(0)
    path = tmp_path / f"drift{SUFFIX[fmt]}"
    with pytest.raises(IAPruneError, match="differs from torch by .*above the tolerance") as info:
        export_model(Drifting(), INPUT_SHAPE, path, fmt, warmup=0, repeats=1)
    assert str(path) in str(info.value)
    assert path.is_file()  # kept for inspection
    # a tolerance wide enough accepts the same model
    res = export_model(Drifting(), INPUT_SHAPE, path, fmt, tolerance=100.0, warmup=0, repeats=1)
    assert 1.0 <= res.max_abs_diff <= 100.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fmt": "tflite"}, "unknown export format 'tflite'; choose from onnx, torchscript"),
        ({"tolerance": -1.0}, "tolerance must be >= 0"),
        ({"tolerance": float("nan")}, "tolerance must be >= 0"),
        ({"check_batches": 0}, "check_batches must be >= 1"),
        ({"batch_size": 0}, "batch size must be >= 1"),
        ({"repeats": 0}, "repeats must be >= 1"),
    ],
)
def test_invalid_arguments_write_nothing(kwargs: dict, message: str, tmp_path: Path) -> None:
    args = {"fmt": "torchscript", **kwargs}
    path = tmp_path / "out" / "m.bin"
    with pytest.raises(IAPruneError, match=re.escape(message)):
        export_model(_pruned("test_vgg"), INPUT_SHAPE, path, **args)
    assert not path.parent.exists()


def test_formats() -> None:
    assert FORMATS == ("onnx", "torchscript")


def test_onnx_without_onnxruntime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    path = tmp_path / "m.onnx"
    with pytest.raises(MissingDependencyError, match=r"iaprune\[deploy\]"):
        export_model(_pruned("test_vgg"), INPUT_SHAPE, path, "onnx", repeats=1)
    assert not path.exists()


def test_torchscript_needs_no_onnx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    res = export_model(_pruned("test_vgg"), INPUT_SHAPE, tmp_path / "m.ts.pt", "torchscript")
    assert res.path.is_file() and res.max_abs_diff <= 1e-4


# -- CLI -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's copy of the session's finished tiny run (export writes into it)."""
    run = tmp_path_factory.mktemp("export-cli") / "run"
    shutil.copytree(tiny_run, run)
    return run


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize("fmt", FORMAT_PARAMS)
def test_cli_export_writes_file_and_summary(
    fmt: str, finished_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["export", str(finished_run), "--format", fmt, "--repeats", "3"]) == 0
    out = capsys.readouterr().out
    path = finished_run / f"pruned{SUFFIX[fmt]}"
    assert path.is_file()
    assert f"wrote {path}" in out
    assert "max abs diff" in out and "latency" in out
    summary = json.loads((finished_run / f"pruned{SUFFIX[fmt]}.json").read_text())
    assert summary["path"] == str(path) and summary["format"] == fmt
    assert 0.0 <= summary["max_abs_diff"] <= 1e-4
    assert summary["latency_ms"] > 0
    assert summary["env"]["batch_size"] == 1 and summary["env"]["repeats"] == 3


@needs_ort
def test_cli_export_baseline_to_output_path(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--baseline exports the unpruned model (more weights) to -o, verified at batch 3."""
    import onnx

    def weights(path: Path) -> int:
        return sum(int(np.prod(t.dims)) for t in onnx.load(str(path)).graph.initializer)

    out = tmp_path / "deploy" / "base.onnx"
    args = ["-o", str(out), "--baseline", "--batch-size", "3", "--repeats", "2"]
    assert main(["export", str(finished_run), "--format", "onnx", *args]) == 0
    assert out.is_file()
    summary = json.loads((tmp_path / "deploy" / "base.onnx.json").read_text())
    assert summary["env"]["batch_size"] == 3
    pruned = tmp_path / "pruned.onnx"
    assert main(["export", str(finished_run), "-o", str(pruned), "--repeats", "2"]) == 0
    assert weights(out) > weights(pruned)


def test_cli_export_of_non_run_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(tmp_path), "--format", "torchscript"]) == 2
    assert "is not an iaprune run directory" in _error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_cli_export_negative_tolerance(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.ts.pt"
    args = ["--format", "torchscript", "-o", str(out), "--tolerance", "-1"]
    assert main(["export", str(finished_run), *args]) == 2
    assert "tolerance must be >= 0" in _error(capsys)
    assert not out.exists()


def test_cli_export_without_onnxruntime(
    finished_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    out = tmp_path / "m.onnx"
    capsys.readouterr()
    assert main(["export", str(finished_run), "--format", "onnx", "-o", str(out)]) == 2
    assert "iaprune[deploy]" in _error(capsys)
    assert not out.exists()
