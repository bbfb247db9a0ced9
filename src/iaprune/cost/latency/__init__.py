"""Latency backends, registered by name (``"torch"`` is always available)."""

from iaprune.cost.latency import torch_backend  # noqa: F401  (registers "torch")
from iaprune.cost.latency._base import (
    BACKENDS,
    LatencyBackend,
    LatencyResult,
    get_backend,
    list_backends,
    summarize_runs,
    time_callable,
)

__all__ = [
    "BACKENDS",
    "LatencyBackend",
    "LatencyResult",
    "get_backend",
    "list_backends",
    "summarize_runs",
    "time_callable",
]
