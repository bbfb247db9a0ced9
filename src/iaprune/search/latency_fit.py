"""The chosen model meets its latency budget as measured, not only as predicted.

The search projects every candidate onto a latency budget with the latency table's
*prediction* (:mod:`iaprune.search.projection`). A prediction can be off (ONNX Runtime's
fused graph is not the sum of its layers), so the chosen configuration is timed A/B
against the unpruned model (:func:`iaprune.cost.compare_latency`). When the upper end of
its interval misses the budget, the prediction is corrected by the measured excess and the
configuration's allocation is projected again, lower, then measured again, at most
:data:`MAX_REFITS` times:

    ``target = budget * predicted / measured_high``

is the prediction at which a configuration with the same error would just meet the
budget. The outcome, met or not, is recorded with every attempt's predicted and measured
latency (:class:`LatencyFit`), so a model over budget is never handed over without a word.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from iaprune.cost import CompareSettings, Interval, compare_latency
from iaprune.pruning.surgery import Pruner
from iaprune.search.projection import PREDICTABLE, BudgetProjection
from iaprune.timing import TimingSettings

log = logging.getLogger(__name__)

MAX_REFITS = 3
"""Re-projections at most after the first measurement."""

FIT_TIMING_SECONDS = 10.0
"""Wall-time limit of one A/B timing of a configuration against the unpruned model."""

Measure = Callable[[Mapping[str, int]], Interval]
"""Times kept widths A/B; returns the latency ratio (or ms) with its interval."""


@dataclass(frozen=True)
class Attempt:
    """One measured configuration: its predicted and measured latency (ratio or ms)."""

    keep: dict[str, int]
    predicted: float
    measured: float
    low: float
    high: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "keep": dict(self.keep),
            "predicted": self.predicted,
            "measured": self.measured,
            "low": self.low,
            "high": self.high,
        }


@dataclass(frozen=True)
class LatencyFit:
    """The attempts to meet budget ``key`` (``latency`` ratio or ``latency_ms``)."""

    key: str
    budget: float
    attempts: tuple[Attempt, ...]

    @property
    def final(self) -> Attempt:
        """The last configuration measured: the one handed over."""
        return self.attempts[-1]

    @property
    def meets(self) -> bool:
        """Whether the final configuration's measured upper bound meets the budget."""
        return self.final.high <= self.budget

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``search.json``'s ``latency_fit``)."""
        return {
            "key": self.key,
            "budget": self.budget,
            "meets_budget": self.meets,
            "predicted": self.final.predicted,
            "measured": self.final.measured,
            "measured_high": self.final.high,
            "attempts": [a.to_dict() for a in self.attempts],
        }


def ab_measure(
    pruner: Pruner,
    input_shape: Sequence[int],
    timing: TimingSettings,
    key: str,
    *,
    seconds: float = FIT_TIMING_SECONDS,
) -> Measure:
    """A :data:`Measure` timing ``pruner``'s model pruned to the given widths A/B.

    Both models run interleaved on ``timing``'s backend, batch size and threads, on the CPU
    unless ``timing`` names a device (:func:`iaprune.cost.compare_latency`). Returns the
    pruned model's latency ratio (``key == "latency"``) or its latency in ms.
    """
    base = copy.deepcopy(pruner.model).cpu().eval()

    def measure(keep: Mapping[str, int]) -> Interval:
        pruned: nn.Module = pruner.prune(keep).cpu().eval()
        cmp = compare_latency(
            {"baseline": base, "pruned": pruned},
            input_shape,
            timing,
            CompareSettings(max_seconds=seconds),
        )
        return cmp.ratios["pruned"] if key == "latency" else cmp.latency["pruned"]

    return measure


def latency_key(projection: BudgetProjection) -> str | None:
    """The predicted latency budget of ``projection`` (``latency`` first), if any."""
    return next((k for k in PREDICTABLE if k in projection.budgets), None)


def fit_measured(
    keep: Mapping[str, int],
    projection: BudgetProjection,
    key: str,
    measure: Measure,
    *,
    max_refits: int = MAX_REFITS,
) -> LatencyFit:
    """Measure ``keep``; while it misses budget ``key``, re-project it lower and measure again.

    Stops when the measured upper bound meets the budget, after ``max_refits``
    re-projections, or when a re-projection no longer changes the widths (the smallest
    allowed widths). Returns every attempt; :attr:`LatencyFit.meets` says how it ended.
    """
    budget = projection.budgets[key]
    predict = projection.predictors[key]
    widths = {g.name: g.channels for g in projection.space.groups}
    current = dict(keep)
    attempts: list[Attempt] = []
    for n in range(max_refits + 1):
        interval = measure(current)
        predicted = predict(current)
        attempts.append(Attempt(current, predicted, interval.value, interval.low, interval.high))
        log.info(
            "latency of the chosen widths: predicted %.4g, measured %.4g [%.4g, %.4g], budget %.4g",
            predicted,
            interval.value,
            interval.low,
            interval.high,
            budget,
        )
        if interval.high <= budget or n == max_refits:
            break
        target = budget * predicted / interval.high
        lower = projection.with_budget(key, target).project(
            {name: current[name] / widths[name] for name in widths}
        )
        if lower == current:
            break
        log.info("re-projecting onto a predicted %s of %.4g (measured correction)", key, target)
        current = lower
    fit = LatencyFit(key, budget, tuple(attempts))
    if not fit.meets:
        log.warning(
            "the chosen model measures %s %.4g (upper bound %.4g), over the budget %.4g "
            "after %d re-projections",
            key,
            fit.final.measured,
            fit.final.high,
            budget,
            len(attempts) - 1,
        )
    return fit
