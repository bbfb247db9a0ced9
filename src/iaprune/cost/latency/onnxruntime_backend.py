"""ONNX Runtime latency backend (``"onnxruntime"``, CPU execution provider).

The model is exported with :func:`iaprune.convert.onnx_bytes` (TorchScript-based
exporter, static batch) and timed in an ``InferenceSession`` whose intra-op thread
count is set explicitly. Needs ``pip install 'iaprune[deploy]'``.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

from torch import nn

from iaprune.convert import onnx_bytes, ort_feed, ort_session, require_onnxruntime
from iaprune.cost.latency._base import (
    BACKENDS,
    LatencyBackend,
    Runner,
    Timing,
    TimingSettings,
    time_callable,
)
from iaprune.cost.latency._torch_util import random_input
from iaprune.errors import IAPruneError, MissingDependencyError
from iaprune.inference import model_dtype

_PACKAGES = ("onnx", "onnxruntime")


@BACKENDS.register("onnxruntime")
class OnnxRuntimeBackend(LatencyBackend):
    """Times ``InferenceSession.run`` on the CPU provider (ORT_ENABLE_ALL, sequential).

    ``threads=None`` uses one intra-op thread so that numbers are comparable across
    runs; ORT's vectorised kernels favour channel counts that are multiples of 16.
    """

    name = "onnxruntime"
    preferred_multiple = 16

    @classmethod
    def available(cls) -> bool:
        """Whether ``onnx`` and ``onnxruntime`` are importable."""
        return all(importlib.util.find_spec(p) is not None for p in _PACKAGES)

    @classmethod
    def unavailable_error(cls) -> IAPruneError:
        """Names the missing package and the pip extra."""
        missing = [p for p in _PACKAGES if importlib.util.find_spec(p) is None]
        return MissingDependencyError(
            f"latency backend 'onnxruntime' needs {', '.join(missing) or 'onnxruntime'}: "
            "pip install 'iaprune[deploy]'"
        )

    @contextlib.contextmanager
    def runner(
        self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings
    ) -> Iterator[Runner]:
        """Export and open the session once; every block times ``session.run``."""
        if settings.device != "cpu":
            raise IAPruneError(
                f"latency backend 'onnxruntime' runs on the cpu, not {settings.device!r}"
            )
        x = random_input(settings.batch_size, shape, dtype=model_dtype(model))
        threads = 1 if settings.threads is None else int(settings.threads)
        session = ort_session(onnx_bytes(model, x, dynamic_batch=False), threads=threads)
        feed = ort_feed(session, x)

        def run_once() -> None:
            session.run(None, feed)

        def block(warmup: int, repeats: int) -> list[float]:
            return time_callable(run_once, warmup=warmup, repeats=repeats)

        version = str(require_onnxruntime().__version__)
        extra = {"provider": "CPUExecutionProvider", "graph_optimization": "ORT_ENABLE_ALL"}
        yield Runner(block, version, threads, "cpu", extra)

    def time_runs(
        self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings
    ) -> Timing:
        """Export, open a session and time ``session.run``; see :meth:`LatencyBackend.measure`."""
        return self.time_with_runner(model, shape, settings)
