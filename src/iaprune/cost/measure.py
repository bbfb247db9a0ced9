"""One-call cost measurement and the two stock cost models."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from iaprune.cost._base import CostModel, CostReport
from iaprune.cost.latency import get_backend
from iaprune.cost.latency._base import check_timing_args
from iaprune.cost.macs import count_macs, count_params
from iaprune.cost.memory import peak_activation_bytes


def measure_cost(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    latency: bool = False,
    backend: str = "torch",
    batch_size: int = 1,
    threads: int | None = 1,
    warmup: int = 5,
    repeats: int = 30,
    device: str = "cpu",
) -> CostReport:
    """Static costs of ``model`` (MACs, params, activation bytes) and optionally latency.

    MACs and activation bytes are always for ONE sample (batch 1); ``batch_size``,
    ``threads``, ``warmup``, ``repeats`` and ``device`` only apply to the latency
    measurement, which is taken with the latency backend named ``backend`` when
    ``latency`` is true.

    Raises:
        IAPruneError: unknown or unavailable backend, or invalid timing arguments.
    """
    shape = tuple(input_shape)
    if latency:  # fail on bad names/arguments before the static passes
        check_timing_args(batch_size=batch_size, threads=threads, warmup=warmup, repeats=repeats)
        timer = get_backend(backend)
    macs = count_macs(model, shape)
    params = count_params(model)
    act = peak_activation_bytes(model, shape)
    if not latency:
        return CostReport(macs=macs, params=params, activation_bytes=act)
    result = timer.measure(
        model,
        shape,
        batch_size=batch_size,
        threads=threads,
        warmup=warmup,
        repeats=repeats,
        device=device,
    )
    return CostReport(
        macs=macs,
        params=params,
        activation_bytes=act,
        latency_ms=result.median_ms,
        latency_spread_ms=result.spread_ms,
        latency_env=result.env,
    )


class StaticCostModel(CostModel):
    """MACs, parameters and activation memory only: deterministic and cheap."""

    def measure(self, model: nn.Module, input_shape: tuple[int, int, int]) -> CostReport:
        """Static :class:`CostReport` of ``model`` (no latency)."""
        return measure_cost(model, input_shape, latency=False)


class MeasuredCostModel(CostModel):
    """Static costs plus latency measured with a registered latency backend.

    The backend is resolved at construction, so an unknown or unavailable backend
    fails before the search starts.
    """

    def __init__(
        self,
        backend: str = "torch",
        *,
        batch_size: int = 1,
        threads: int | None = 1,
        warmup: int = 5,
        repeats: int = 30,
        device: str = "cpu",
    ) -> None:
        check_timing_args(batch_size=batch_size, threads=threads, warmup=warmup, repeats=repeats)
        get_backend(backend)
        self.backend = backend
        self.batch_size = batch_size
        self.threads = threads
        self.warmup = warmup
        self.repeats = repeats
        self.device = device

    def measure(self, model: nn.Module, input_shape: tuple[int, int, int]) -> CostReport:
        """Static costs plus median/IQR latency of ``model``."""
        return measure_cost(
            model,
            input_shape,
            latency=True,
            backend=self.backend,
            batch_size=self.batch_size,
            threads=self.threads,
            warmup=self.warmup,
            repeats=self.repeats,
            device=self.device,
        )
