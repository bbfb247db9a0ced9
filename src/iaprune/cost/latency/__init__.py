"""Latency backends, registered by name.

``"torch"`` (eager) is always available; ``"torchscript"``, ``"torch-compile"``,
``"onnxruntime"`` and ``"cuda"`` are available where their runtime, compiler or device
is (see :func:`list_backends` with ``available_only=True``). Every backend takes its
settings as one :class:`~iaprune.timing.TimingSettings`; :func:`measure_latency` times a
model with the backend those settings name. Every registered backend must pass the
contract suite :class:`iaprune.testing.latency.LatencyBackendSuite`.
"""

from iaprune.cost.latency import (  # noqa: F401  (each module registers its backend)
    compile_backend,
    cuda_backend,
    onnxruntime_backend,
    torch_backend,
    torchscript_backend,
)
from iaprune.cost.latency._base import (
    BACKENDS,
    LatencyBackend,
    LatencyResult,
    NodeTime,
    Runner,
    Timing,
    TimingSettings,
    default_round_to,
    frozen_gc,
    get_backend,
    list_backends,
    measure_latency,
    summarize_runs,
    time_callable,
)
from iaprune.cost.latency._torch_util import random_input, resolve_device, torch_threads
from iaprune.cost.latency.compile_backend import TorchCompileBackend
from iaprune.cost.latency.cuda_backend import CudaBackend
from iaprune.cost.latency.onnxruntime_backend import OnnxRuntimeBackend
from iaprune.cost.latency.torch_backend import TorchBackend
from iaprune.cost.latency.torchscript_backend import TorchScriptBackend

__all__ = [
    "BACKENDS",
    "CudaBackend",
    "LatencyBackend",
    "LatencyResult",
    "NodeTime",
    "OnnxRuntimeBackend",
    "Runner",
    "TorchBackend",
    "TorchCompileBackend",
    "TorchScriptBackend",
    "Timing",
    "TimingSettings",
    "default_round_to",
    "frozen_gc",
    "get_backend",
    "list_backends",
    "measure_latency",
    "random_input",
    "resolve_device",
    "summarize_runs",
    "time_callable",
    "torch_threads",
]
