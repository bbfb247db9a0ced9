"""Inference cost of a model: MACs, parameters, activation memory and latency.

One contract: a :class:`CostModel` turns a (pruned) model, optionally with its kept
widths, into a :class:`CostReport`. Cost models are registered by name in
:data:`COST_MODELS` (``"static"``: MACs/params/memory; ``"measured"``: plus latency timed
with a latency backend; ``"predicted"``: plus latency looked up in a
:class:`~iaprune.cost.lut.LatencyTable`) and created with :func:`create_cost_model`.
How latency is timed is one :class:`~iaprune.timing.TimingSettings` object everywhere;
latency runtimes plug in through :data:`iaprune.cost.latency.BACKENDS`.
:func:`measure_cost` is the one-call entry point. :func:`compare_latency` times several
models interleaved and reports latency ratios with confidence intervals (A/B timing).
"""

from iaprune.cost._base import (
    COST_MODELS,
    CostModel,
    CostReport,
    create_cost_model,
    list_cost_models,
)
from iaprune.cost._util import check_input_shape
from iaprune.cost.compare import (
    CompareSettings,
    Interval,
    LatencyComparison,
    compare_latency,
    mean_interval,
    ratio_interval,
)
from iaprune.cost.latency import (
    BACKENDS,
    LatencyBackend,
    LatencyResult,
    Runner,
    get_backend,
    list_backends,
    measure_latency,
    time_callable,
)
from iaprune.cost.lut import (
    LatencyTable,
    LatencyTableWarning,
    PredictedCostModel,
    default_table_path,
    load_or_build,
    predicted_cost,
)
from iaprune.cost.macs import count_macs, count_params
from iaprune.cost.measure import MeasuredCostModel, StaticCostModel, measure_cost
from iaprune.cost.memory import peak_activation_bytes
from iaprune.devices import device_name
from iaprune.timing import TimingSettings

__all__ = [
    "BACKENDS",
    "COST_MODELS",
    "CompareSettings",
    "CostModel",
    "CostReport",
    "Interval",
    "LatencyBackend",
    "LatencyComparison",
    "LatencyResult",
    "LatencyTable",
    "LatencyTableWarning",
    "MeasuredCostModel",
    "PredictedCostModel",
    "Runner",
    "StaticCostModel",
    "TimingSettings",
    "check_input_shape",
    "compare_latency",
    "count_macs",
    "count_params",
    "create_cost_model",
    "default_table_path",
    "device_name",
    "get_backend",
    "list_backends",
    "list_cost_models",
    "load_or_build",
    "measure_cost",
    "mean_interval",
    "measure_latency",
    "peak_activation_bytes",
    "predicted_cost",
    "ratio_interval",
    "time_callable",
]
