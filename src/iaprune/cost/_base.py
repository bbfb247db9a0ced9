"""Cost report, and the cost model contract with its registry."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from torch import nn

from iaprune._registry import Registry

__all__ = ["COST_MODELS", "CostModel", "CostReport", "create_cost_model", "list_cost_models"]


def _ratio(value: float, base: float) -> float:
    """``value / base`` with ``0/0 == 1`` (nothing changed) and ``x/0 == inf``."""
    if base == 0:
        return 1.0 if value == 0 else math.inf
    return float(value) / float(base)


@dataclass(frozen=True)
class CostReport:
    """Inference cost of one model for one per-sample input shape.

    Attributes:
        macs: multiply-accumulates of one forward pass of ONE sample (batch size 1),
            counting conv and linear layers only (see :func:`iaprune.cost.count_macs`).
            FLOPs are ``2 * macs`` (:attr:`flops`).
        params: number of parameters (all of them, trainable or not).
        activation_bytes: peak activation memory estimate for batch 1 in float32
            (see :func:`iaprune.cost.peak_activation_bytes`).
        latency_ms: median latency of one forward pass of one *batch*, in milliseconds,
            or ``None`` when latency was not measured.
        latency_spread_ms: spread of the latency in milliseconds: the inter-quartile range
            of the repeated runs (:func:`iaprune.cost.measure_cost`), or, in a run's report
            (timed A/B against the unpruned model), the width of the 95 % interval;
            ``latency_env["spread"]`` says which.
        latency_env: how latency was measured (backend, version, threads, device,
            batch_size, input_shape, warmup, repeats, ...); latencies are only
            comparable when their environments match.
    """

    macs: int
    params: int
    activation_bytes: int
    latency_ms: float | None = None
    latency_spread_ms: float | None = None
    latency_env: dict[str, object] | None = None

    @property
    def flops(self) -> int:
        """Floating-point operations, ``2 * macs``."""
        return 2 * self.macs

    @property
    def has_latency(self) -> bool:
        """Whether a latency measurement is attached."""
        return self.latency_ms is not None

    def ratio_to(self, base: CostReport) -> dict[str, float]:
        """Each cost divided by the same cost of ``base`` (typically the unpruned model).

        Returns a dict with keys ``'macs'``, ``'params'``, ``'activation_bytes'`` and,
        only when both reports carry a latency, ``'latency'``. A zero base gives
        ``1.0`` for a zero value and ``inf`` otherwise.
        """
        out = {
            "macs": _ratio(self.macs, base.macs),
            "params": _ratio(self.params, base.params),
            "activation_bytes": _ratio(self.activation_bytes, base.activation_bytes),
        }
        if self.latency_ms is not None and base.latency_ms is not None:
            out["latency"] = _ratio(self.latency_ms, base.latency_ms)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict (JSON-friendly) form of the report; inverse of :meth:`from_dict`."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.latency_env is not None:
            out["latency_env"] = dict(self.latency_env)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostReport:
        """Rebuild a report from :meth:`to_dict` output (unknown keys are ignored)."""
        env = data.get("latency_env")
        latency = data.get("latency_ms")
        spread = data.get("latency_spread_ms")
        return cls(
            macs=int(data["macs"]),
            params=int(data["params"]),
            activation_bytes=int(data["activation_bytes"]),
            latency_ms=None if latency is None else float(latency),
            latency_spread_ms=None if spread is None else float(spread),
            latency_env=None if env is None else dict(env),
        )


class CostModel(ABC):
    """Turns a (pruned) model into a :class:`CostReport`: the search objective's cost term.

    The one contract for costs; everything the search, the pipeline and the benchmarks
    measure goes through it. Implementations are registered by name in
    :data:`COST_MODELS` (built in: ``"static"``, ``"measured"``, ``"predicted"``) and
    created with :func:`create_cost_model`.

    When it is called: the search's :class:`~iaprune.search.CandidateEvaluator` calls
    :meth:`measure` once on the unpruned model with ``keep=None`` (the baseline that
    ratios are taken against) and then once per trial on each candidate pruned model,
    after structural pruning and before any fine-tuning, with the candidate's kept
    filter count per channel group as ``keep``. A cost model may use ``keep`` instead of
    inspecting the model (a latency lookup table predicts from widths); static and
    measured models ignore it.

    Implementations must not change the model's parameters, buffers or per-module
    ``training`` flags, nor the global RNG state; they must report MACs, params and
    activation bytes for one sample and, when :attr:`has_latency` is true, a latency.
    Every registered implementation must pass the contract suite
    :class:`iaprune.testing.cost.CostModelSuite`.

    To add one::

        @COST_MODELS.register("mycost")
        class MyCost(CostModel):
            name = "mycost"
            has_latency = True

            def measure(self, model, input_shape, keep=None) -> CostReport:
                ...
    """

    name: ClassVar[str] = ""
    has_latency: ClassVar[bool] = False
    """Whether :meth:`measure` fills ``latency_ms``."""
    uses_keep: ClassVar[bool] = False
    """Whether the result depends on ``keep`` rather than on the model alone."""

    @abstractmethod
    def measure(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        keep: Mapping[str, int] | None = None,
    ) -> CostReport:
        """Cost of ``model`` for per-sample inputs of ``input_shape`` (e.g. ``(C, H, W)``).

        Args:
            model: the unpruned model or a pruned candidate (not modified).
            input_shape: per-sample input shape.
            keep: kept filters per channel group of the candidate (``None``: the
                unpruned model; groups missing from it are at full width).

        Raises:
            IAPruneError: the model cannot be measured with this cost model's settings.
        """


COST_MODELS: Registry[type[CostModel]] = Registry("cost model")
"""Cost models by name; see :class:`CostModel` for how to add one."""


def create_cost_model(name: str, *args: Any, **options: Any) -> CostModel:
    """Instantiate the cost model registered as ``name`` with its constructor arguments.

    ``create_cost_model("static")``, ``create_cost_model("measured", timing)``,
    ``create_cost_model("predicted", table)``.

    Raises:
        IAPruneError: unknown name (the message lists the valid ones) or bad options.
    """
    return COST_MODELS.get(name)(*args, **options)


def list_cost_models() -> list[str]:
    """Sorted names of the registered cost models."""
    return COST_MODELS.names()
