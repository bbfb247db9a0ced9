"""Export a model to a deployment format, check it against torch and time it."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from iaprune.convert import (
    load_torchscript,
    onnx_export,
    ort_run,
    ort_session,
    require_onnxruntime,
    save_torchscript,
    trace_frozen,
)
from iaprune.cost import check_input_shape
from iaprune.cost.latency import random_input, summarize_runs, time_callable, torch_threads
from iaprune.devices import model_device
from iaprune.errors import IAPruneError
from iaprune.fileio import atomic_path, check_output_file
from iaprune.inference import eval_mode
from iaprune.timing import TimingSettings

FORMATS = ("onnx", "torchscript")
"""Export formats :func:`export_model` writes."""
SUFFIX = {"onnx": ".onnx", "torchscript": ".ts.pt"}
"""File suffix per format."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_model` wrote and measured.

    Attributes:
        path: the exported file.
        format: ``"onnx"`` or ``"torchscript"``.
        max_abs_diff: largest absolute difference between the exported model's outputs
            and eager PyTorch's over the check inputs.
        latency_ms: median latency of one ``batch_size`` batch in the exported runtime.
        latency_spread_ms: inter-quartile range of the timed runs.
        env: how the latency was measured (runtime, version, threads, batch).
    """

    path: Path
    format: str
    max_abs_diff: float
    latency_ms: float
    latency_spread_ms: float
    env: dict[str, Any] = field(default_factory=dict)


Runner = Callable[[torch.Tensor], np.ndarray]
"""Runs the exported model on one input batch and returns its output as an array."""


def _onnx_runner(model: nn.Module, x: torch.Tensor, path: Path, threads: int) -> Runner:
    require_onnxruntime()
    onnx_export(model, x, path, dynamic_batch=True)
    session = ort_session(path, threads=threads)
    return lambda inp: ort_run(session, inp)


def _torchscript_runner(model: nn.Module, x: torch.Tensor, path: Path, threads: int) -> Runner:
    save_torchscript(trace_frozen(model, x), path)
    loaded = load_torchscript(path)

    def run(inp: torch.Tensor) -> np.ndarray:
        with torch_threads(threads), torch.inference_mode():
            return loaded(inp).numpy()

    return run


def _version(fmt: str) -> str:
    if fmt == "onnx":
        return f"onnxruntime {require_onnxruntime().__version__}"
    return f"torch {torch.__version__}"


def export_model(
    model: nn.Module,
    input_shape: Sequence[int],
    path: str | Path,
    fmt: str = "onnx",
    *,
    batch_size: int = 1,
    threads: int = 1,
    tolerance: float = 1e-4,
    check_batches: int = 3,
    warmup: int = 5,
    repeats: int = 30,
) -> ExportResult:
    """Write ``model`` (CPU, eval mode) as ``fmt`` to ``path``, verify it and time it.

    The exported file is reloaded in its runtime (ONNX Runtime CPU provider or
    ``torch.jit.load``) and run on ``check_batches`` seeded random batches of
    ``batch_size`` samples; its outputs must match eager PyTorch within ``tolerance``
    (max absolute difference). Latency is the median of ``repeats`` runs.

    A model on another device is copied to the CPU; the caller's model is not moved.
    The file is written beside ``path`` and renamed over it once verified (a link at
    ``path`` is replaced, not followed); an export that fails or is interrupted leaves
    no file.

    Raises:
        IAPruneError: unknown format, negative tolerance, ``check_batches < 1``, ``path``
            exists and is not a regular file (a device, fifo or directory), export
            failure, or outputs differ above tolerance (the file is kept for
            inspection and the message names it).
        MissingDependencyError: ONNX export without ``onnx``/``onnxruntime``.
    """
    if fmt not in FORMATS:
        raise IAPruneError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    TimingSettings(batch_size=batch_size, threads=threads, warmup=warmup, repeats=repeats)
    if not tolerance >= 0:  # also rejects NaN
        raise IAPruneError(f"tolerance must be >= 0, got {tolerance}")
    if check_batches < 1:
        raise IAPruneError(f"check_batches must be >= 1, got {check_batches}")
    shape = check_input_shape(input_shape)
    out = check_output_file(path, what="export output")
    if model_device(model).type != "cpu":
        model = copy.deepcopy(model).cpu()  # nn.Module.cpu() moves in place
    example = random_input(batch_size, shape)
    make = _onnx_runner if fmt == "onnx" else _torchscript_runner
    runs: list[float] = []
    with atomic_path(out, what="export output") as tmp:
        runner = make(model, example, tmp, threads)
        diff = _max_diff(model, runner, batch_size, shape, check_batches, f"exported {fmt} model")
        if diff <= tolerance:
            runs = time_callable(lambda: runner(example), warmup=warmup, repeats=repeats)
    if not diff <= tolerance:  # the file is in place, for inspection
        raise IAPruneError(
            f"exported {fmt} model at {out} differs from torch by {diff:.3g} "
            f"(max abs), above the tolerance {tolerance:g}"
        )
    median, spread = summarize_runs(runs)
    env = {
        "runtime": fmt,
        "version": _version(fmt),
        "threads": threads,
        "batch_size": batch_size,
        "input_shape": list(shape),
        "warmup": warmup,
        "repeats": repeats,
    }
    return ExportResult(out, fmt, diff, median, spread, env)


def _max_diff(
    model: nn.Module, runner: Runner, batch_size: int, shape: Sequence[int], batches: int, what: str
) -> float:
    """Largest absolute difference between ``runner`` and ``model`` on seeded random inputs."""
    diff = 0.0
    with eval_mode(model), torch.inference_mode():
        for i in range(batches):
            x = random_input(batch_size, shape, seed=1000 + i)
            ref = model(x).numpy()
            got = np.asarray(runner(x))
            if got.shape != ref.shape:
                raise IAPruneError(
                    f"{what} returns shape {list(got.shape)}, torch returns {list(ref.shape)}"
                )
            diff = max(diff, float(np.max(np.abs(got.astype(np.float64) - ref))))
    return diff


def default_export_path(run_dir: str | Path, fmt: str, *, baseline: bool = False) -> Path:
    """``RUN_DIR/pruned.onnx`` or ``RUN_DIR/pruned.ts.pt`` (``baseline.*`` for the baseline)."""
    return Path(run_dir) / f"{'baseline' if baseline else 'pruned'}{SUFFIX[fmt]}"
