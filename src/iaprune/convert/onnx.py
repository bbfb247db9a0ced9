"""ONNX export (TorchScript-based exporter) and ONNX Runtime sessions.

``onnx`` and ``onnxruntime`` are optional (``pip install 'iaprune[deploy]'``) and are
imported only when a function here needs them.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import nn

from iaprune._imports import optional_import
from iaprune.devices import model_device
from iaprune.errors import IAPruneError, one_line
from iaprune.inference import eval_mode

DEFAULT_OPSET = 17
"""ONNX opset used for every export."""
INPUT_NAME = "input"
"""Name of the exported graph's input."""
OUTPUT_NAME = "output"
"""Name of the exported graph's output."""
PROVIDER = "CPUExecutionProvider"
"""The ONNX Runtime execution provider used for verification and latency."""

_ORT_DTYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
}


def require_onnx() -> ModuleType:
    """Import ``onnx`` (the exporter needs it) or raise :class:`MissingDependencyError`."""
    return optional_import("onnx")


def require_onnxruntime() -> ModuleType:
    """Import ``onnxruntime`` or raise :class:`MissingDependencyError`."""
    return optional_import("onnxruntime")


def onnx_export(
    model: nn.Module,
    example_input: torch.Tensor,
    f: str | Path | BinaryIO,
    *,
    dynamic_batch: bool = True,
    opset: int = DEFAULT_OPSET,
) -> None:
    """Export ``model`` in eval mode to ONNX with the TorchScript-based exporter.

    ``torch.onnx.export(..., dynamo=False, opset_version=opset, input_names=["input"],
    output_names=["output"])``; with ``dynamic_batch`` the first axis of input and
    output is the symbolic ``batch``. Every submodule's ``training`` flag is restored.

    Raises:
        MissingDependencyError: ``onnx`` is not installed.
        IAPruneError: the exporter cannot convert the model.
    """
    require_onnx()
    x = example_input.to(model_device(model))
    dynamic_axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    target: Any = str(f) if isinstance(f, Path) else f
    with eval_mode(model), torch.no_grad(), warnings.catch_warnings():
        # the legacy exporter is what we ask for: its deprecation notice is noise here
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            torch.onnx.export(
                model,
                (x,),
                target,
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes=dynamic_axes,
            )
        except Exception as exc:  # unsupported operator, data-dependent control flow, ...
            raise IAPruneError(f"ONNX export failed: {one_line(exc)}") from exc


def onnx_bytes(
    model: nn.Module,
    example_input: torch.Tensor,
    *,
    dynamic_batch: bool = True,
    opset: int = DEFAULT_OPSET,
) -> bytes:
    """:func:`onnx_export` into memory; returns the serialised ``ModelProto``."""
    buf = io.BytesIO()
    onnx_export(model, example_input, buf, dynamic_batch=dynamic_batch, opset=opset)
    return buf.getvalue()


def ort_session(
    source: bytes | str | Path, *, threads: int, profile_prefix: Path | None = None
) -> Any:
    """An ONNX Runtime ``InferenceSession`` on the CPU provider.

    Session options: ``intra_op_num_threads=threads``, ``inter_op_num_threads=1``,
    sequential execution, graph optimisation level ``ORT_ENABLE_ALL``.

    Args:
        source: a serialised model or the path of a ``.onnx`` file.
        threads: intra-op threads (>= 1).
        profile_prefix: turn on ONNX Runtime's per-node profiler, writing its JSON
            trace to a file whose name starts with this path (``end_profiling()``
            returns it).

    Raises:
        MissingDependencyError: ``onnxruntime`` is not installed.
        IAPruneError: the model cannot be loaded.
    """
    ort = require_onnxruntime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_prefix)
    model: bytes | str = str(source) if isinstance(source, Path) else source
    try:
        return ort.InferenceSession(model, sess_options=opts, providers=[PROVIDER])
    except Exception as exc:
        where = f" {source}" if isinstance(source, str | Path) else ""
        raise IAPruneError(f"onnxruntime cannot load the model{where}: {one_line(exc)}") from exc


def ort_input_dtype(session: Any) -> type[np.generic]:
    """Numpy dtype of the session's first input (float32 unless the graph says otherwise)."""
    return _ORT_DTYPES.get(session.get_inputs()[0].type, np.float32)


def ort_run(session: Any, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Run ``session`` on one input batch and return its first output.

    Raises:
        IAPruneError: onnxruntime rejects the input (wrong shape, rank, ...).
    """
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    arr = np.ascontiguousarray(arr, dtype=ort_input_dtype(session))
    name = session.get_inputs()[0].name
    try:
        return session.run(None, {name: arr})[0]
    except Exception as exc:
        raise IAPruneError(
            f"onnxruntime failed on an input of shape {list(arr.shape)}: {one_line(exc)}"
        ) from exc


def ort_feed(session: Any, x: torch.Tensor) -> dict[str, np.ndarray]:
    """The ``{input_name: array}`` feed for ``x`` in the session's input dtype."""
    arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=ort_input_dtype(session))
    return {session.get_inputs()[0].name: arr}


def ort_input_shape(session: Any) -> Sequence[int | str | None]:
    """The declared shape of the session's first input (``"batch"`` when dynamic)."""
    return list(session.get_inputs()[0].shape)
