"""Model conversion to deployment runtimes: ONNX (and ONNX Runtime sessions), TorchScript.

The layer below both :mod:`iaprune.export` (write, verify, time a file) and the latency
backends of :mod:`iaprune.cost.latency` (time a model in a runtime): it imports neither.
``onnx`` and ``onnxruntime`` are optional (``pip install 'iaprune[deploy]'``) and are
imported only by the functions that need them.
"""

from __future__ import annotations

from iaprune.convert.onnx import (
    DEFAULT_OPSET,
    INPUT_NAME,
    OUTPUT_NAME,
    PROVIDER,
    onnx_bytes,
    onnx_export,
    ort_feed,
    ort_input_dtype,
    ort_input_shape,
    ort_run,
    ort_session,
    require_onnx,
    require_onnxruntime,
)
from iaprune.convert.torchscript import (
    load_torchscript,
    optimize_scripted,
    save_torchscript,
    trace_frozen,
)

__all__ = [
    "DEFAULT_OPSET",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "PROVIDER",
    "load_torchscript",
    "onnx_bytes",
    "onnx_export",
    "optimize_scripted",
    "ort_feed",
    "ort_input_dtype",
    "ort_input_shape",
    "ort_run",
    "ort_session",
    "require_onnx",
    "require_onnxruntime",
    "save_torchscript",
    "trace_frozen",
]
