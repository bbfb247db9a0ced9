"""Deployment export of a (pruned) model: ONNX or TorchScript, verified and timed.

:func:`export_model` writes the file, reloads it in its runtime, compares its outputs
with eager PyTorch on seeded random inputs (failing above ``tolerance``) and times it.
ONNX needs the optional ``deploy`` extra (``pip install 'iaprune[deploy]'``). The
conversion functions re-exported here live in :mod:`iaprune.convert`.
"""

from __future__ import annotations

from iaprune.convert import (  # conversion lives one layer down; re-exported here
    DEFAULT_OPSET,
    load_torchscript,
    onnx_bytes,
    onnx_export,
    optimize_scripted,
    ort_feed,
    ort_input_shape,
    ort_run,
    ort_session,
    require_onnx,
    require_onnxruntime,
    save_torchscript,
    trace_frozen,
)
from iaprune.export.verify import FORMATS, ExportResult, export_model

__all__ = [
    "DEFAULT_OPSET",
    "FORMATS",
    "ExportResult",
    "export_model",
    "load_torchscript",
    "onnx_bytes",
    "onnx_export",
    "optimize_scripted",
    "ort_feed",
    "ort_input_shape",
    "ort_run",
    "ort_session",
    "require_onnx",
    "require_onnxruntime",
    "save_torchscript",
    "trace_frozen",
]
