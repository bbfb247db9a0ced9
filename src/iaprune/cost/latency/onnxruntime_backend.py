"""ONNX Runtime latency backend (``"onnxruntime"``, CPU execution provider).

The model is exported with :func:`iaprune.convert.onnx_bytes` (TorchScript-based
exporter, static batch) and timed in an ``InferenceSession`` whose intra-op thread
count is set explicitly. Needs ``pip install 'iaprune[deploy]'``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from iaprune.convert import onnx_bytes, ort_feed, ort_session, require_onnxruntime
from iaprune.cost.latency._base import (
    BACKENDS,
    LatencyBackend,
    NodeTime,
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
    profiles_nodes = True

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

    def profile_nodes(
        self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings, statistic: str
    ) -> list[NodeTime]:
        """Every node of the optimised graph, from ``SessionOptions.enable_profiling``.

        The trace is written to a private temporary directory and removed afterwards.
        """
        x = random_input(settings.batch_size, shape, dtype=model_dtype(model))
        threads = 1 if settings.threads is None else int(settings.threads)
        data = onnx_bytes(model, x, dynamic_batch=False)
        with tempfile.TemporaryDirectory(prefix="iaprune-ort-") as tmp:
            session = ort_session(data, threads=threads, profile_prefix=Path(tmp) / "trace")
            feed = ort_feed(session, x)
            for _ in range(settings.warmup + settings.repeats):
                session.run(None, feed)
            trace = Path(session.end_profiling())
            events = json.loads(trace.read_text(encoding="utf-8"))
        return node_times(events, settings.warmup, statistic)


def _dims(shapes: Sequence[Mapping[str, Sequence[int]]], index: int) -> tuple[int, ...]:
    if len(shapes) <= index:
        return ()
    return tuple(int(d) for d in next(iter(shapes[index].values()), ()))


def node_times(events: Sequence[Mapping[str, Any]], skip: int, statistic: str) -> list[NodeTime]:
    """Per-node times (ms) from an ONNX Runtime profile, in first-execution order.

    Only ``*_kernel_time`` node events count; the first ``skip`` runs of every node
    (warm-up) are dropped, and each node gets the ``"median"`` or ``"min"`` of the rest.
    """
    runs: dict[str, list[float]] = defaultdict(list)
    first: dict[str, Mapping[str, Any]] = {}
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        first.setdefault(name, event)
        runs[name].append(float(event["dur"]) / 1000.0)
    nodes = []
    for name, event in first.items():
        times = runs[name][skip:] or runs[name]
        args = event.get("args", {})
        inputs = args.get("input_type_shape", [])
        op = str(args.get("op_name", ""))
        weight = _dims(inputs, 1)
        kernel = weight[2:] if op.endswith("Conv") and len(weight) > 2 else None
        value = min(times) if statistic == "min" else statistics.median(times)
        nodes.append(NodeTime(name, op, value, kernel, _dims(inputs, 0)[2:]))
    return nodes
