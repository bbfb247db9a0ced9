"""Inference cost of a model: MACs, parameters, activation memory and latency.

``measure_cost`` is the one-call entry point; :class:`CostModel` subclasses are what
the search objective uses, and latency runtimes plug in through
:data:`iaprune.cost.latency.BACKENDS`.
"""

from iaprune.cost._base import CostModel, CostReport
from iaprune.cost.latency import (
    BACKENDS,
    LatencyBackend,
    LatencyResult,
    get_backend,
    list_backends,
    time_callable,
)
from iaprune.cost.macs import count_macs, count_params
from iaprune.cost.measure import MeasuredCostModel, StaticCostModel, measure_cost
from iaprune.cost.memory import peak_activation_bytes

__all__ = [
    "BACKENDS",
    "CostModel",
    "CostReport",
    "LatencyBackend",
    "LatencyResult",
    "MeasuredCostModel",
    "StaticCostModel",
    "count_macs",
    "count_params",
    "get_backend",
    "list_backends",
    "measure_cost",
    "peak_activation_bytes",
    "time_callable",
]
