"""One-call cost measurement and the two stock cost models (static, measured latency)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from iaprune.cost._base import COST_MODELS, CostModel, CostReport
from iaprune.cost._util import check_input_shape
from iaprune.cost.latency import get_backend
from iaprune.cost.macs import count_macs, count_params
from iaprune.cost.memory import peak_activation_bytes
from iaprune.timing import TimingSettings, resolve_timing

__all__ = ["MeasuredCostModel", "StaticCostModel", "measure_cost"]


def measure_cost(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    latency: bool = False,
    timing: TimingSettings | None = None,
    **overrides: Any,
) -> CostReport:
    """Static costs of ``model`` (MACs, params, activation bytes) and optionally latency.

    MACs and activation bytes are always for ONE sample (batch 1). When ``latency`` is
    true the model is also timed as ``timing`` says (:class:`~iaprune.timing.TimingSettings`:
    backend, batch size, threads, warm-up, repeats, device; default: its defaults).

    Args:
        model: the network (not modified).
        input_shape: per-sample input shape.
        latency: also measure latency.
        timing: how to time it.
        **overrides: individual timing fields (``backend="onnxruntime"``,
            ``batch_size=4``, ...) replacing those of ``timing``.

    Raises:
        IAPruneError: unknown or unavailable backend, or invalid timing settings.
    """
    shape = check_input_shape(input_shape)
    if latency:  # fail on bad names/arguments before the static passes
        settings = resolve_timing(timing, **overrides)
        timer = get_backend(settings.backend)
    macs = count_macs(model, shape)
    params = count_params(model)
    act = peak_activation_bytes(model, shape)
    if not latency:
        return CostReport(macs=macs, params=params, activation_bytes=act)
    result = timer.measure(model, shape, settings)
    return CostReport(
        macs=macs,
        params=params,
        activation_bytes=act,
        latency_ms=result.median_ms,
        latency_spread_ms=result.spread_ms,
        latency_env={**result.env, "spread": "inter-quartile range"},
    )


@COST_MODELS.register("static")
class StaticCostModel(CostModel):
    """MACs, parameters and activation memory only: deterministic and cheap."""

    name = "static"

    def measure(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        keep: Mapping[str, int] | None = None,
    ) -> CostReport:
        """Static :class:`CostReport` of ``model`` (no latency; ``keep`` is ignored)."""
        return measure_cost(model, input_shape, latency=False)


@COST_MODELS.register("measured")
class MeasuredCostModel(CostModel):
    """Static costs plus latency timed with a registered latency backend.

    ``MeasuredCostModel(timing)`` with a :class:`~iaprune.timing.TimingSettings`;
    ``MeasuredCostModel("onnxruntime", repeats=10)`` (a backend name and individual
    settings) also works. The backend is resolved at construction, so an unknown or
    unavailable backend fails before the search starts.

    Attributes:
        timing: the settings every measurement uses.
    """

    name = "measured"
    has_latency = True

    def __init__(self, timing: TimingSettings | str | None = None, **overrides: Any) -> None:
        if isinstance(timing, str):
            timing, overrides = None, {"backend": timing, **overrides}
        self.timing = resolve_timing(timing, **overrides)
        get_backend(self.timing.backend)

    def measure(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        keep: Mapping[str, int] | None = None,
    ) -> CostReport:
        """Static costs plus median/IQR latency of ``model`` (``keep`` is ignored)."""
        return measure_cost(model, input_shape, latency=True, timing=self.timing)

    @property
    def backend(self) -> str:
        """Name of the latency backend (``timing.backend``)."""
        return self.timing.backend
