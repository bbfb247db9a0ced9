"""Interleaved A/B latency comparison: ratios with confidence intervals, not two medians.

Timing a baseline and a pruned model one after the other, each with its own median, is
what made earlier results flip between passes: a shared machine drifts (another job,
frequency scaling, cache state) on the scale of seconds, so two medians taken a minute
apart differ by more than the effect. :func:`compare_latency` instead

1. prepares every model once in the runtime (:meth:`LatencyBackend.runner`: export,
   session, pinned thread count);
2. runs *rounds*: in each round every model runs one short block (``block`` timed runs
   after ``block_warmup`` untimed ones), in a seeded shuffled order, so drift within a
   round hits all models alike;
3. keeps each model's block median per round and takes, per round, the ratio of each
   model to the reference (paired design: a slow round slows both);
4. summarises with :func:`ratio_interval`: the geometric mean of the per-round ratios and
   a Student-t confidence interval on their logarithms;
5. stops once every ratio's interval is within ``target`` (relative half-width) or after
   ``max_rounds`` rounds / ``max_seconds``.

An interval wider than ``tolerance`` (default +-5 %) is *flagged*
(:meth:`LatencyComparison.flagged`): the pipeline's report and the benchmarks print the
flag next to the number. The absolute latency of each model gets the same kind of
interval (:func:`mean_interval` on its per-round medians), which is what a latency
budget is checked against.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from torch import nn

from iaprune.cost._util import check_input_shape
from iaprune.cost.latency import LatencyBackend, frozen_gc, get_backend
from iaprune.errors import IAPruneError
from iaprune.timing import TimingSettings, resolve_timing

__all__ = [
    "CompareSettings",
    "Interval",
    "LatencyComparison",
    "compare_latency",
    "mean_interval",
    "ratio_interval",
]


@dataclass(frozen=True)
class Interval:
    """A positive quantity with a confidence interval (geometric mean of per-round values).

    Attributes:
        value: the estimate (geometric mean).
        low: lower bound of the interval.
        high: upper bound of the interval.
        confidence: the interval's confidence level, e.g. 0.95.
        rounds: number of per-round values behind it.
    """

    value: float
    low: float
    high: float
    confidence: float
    rounds: int

    @property
    def half_width(self) -> float:
        """Largest relative distance from the estimate to a bound (0.03 = +-3 %)."""
        if self.value <= 0 or not math.isfinite(self.high):
            return math.inf
        return max(self.high / self.value - 1.0, 1.0 - self.low / self.value)

    def wide(self, tolerance: float = 0.05) -> bool:
        """Whether the interval is wider than +-``tolerance`` (relative)."""
        return self.half_width > tolerance

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready form (``half_width`` included; ``inf`` stays a float)."""
        return {**asdict(self), "half_width": self.half_width}

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}]"


def _t_quantile(confidence: float, dof: int) -> float:
    from scipy.stats import t  # lazy: scipy is slow to import

    return float(t.ppf(0.5 + confidence / 2.0, dof))


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Geometric mean of positive ``values`` with a Student-t interval on their logs.

    Timings are skewed and multiplicative (a busy machine scales them), so the mean and
    the interval are taken on ``log(values)`` and transformed back. One value gives an
    unbounded interval ``[0, inf]``.

    Raises:
        ValueError: no values, a value that is not positive and finite, or a confidence
            outside ``(0, 1)``.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    arr = np.asarray(values, dtype=float)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError("need at least one positive, finite value")
    logs = np.log(arr)
    centre = float(np.exp(logs.mean()))
    if arr.size == 1:
        return Interval(centre, 0.0, math.inf, confidence, 1)
    sem = float(logs.std(ddof=1)) / math.sqrt(arr.size)
    half = _t_quantile(confidence, arr.size - 1) * sem
    return Interval(
        centre,
        float(np.exp(logs.mean() - half)),
        float(np.exp(logs.mean() + half)),
        confidence,
        int(arr.size),
    )


def ratio_interval(
    reference_ms: Sequence[float], other_ms: Sequence[float], confidence: float = 0.95
) -> Interval:
    """``other / reference`` from paired per-round timings, with a confidence interval.

    ``reference_ms[r]`` and ``other_ms[r]`` were taken in the same round ``r``; the ratio
    of each pair cancels whatever slowed that round down, and :func:`mean_interval` of
    the per-round ratios is the estimate.

    Raises:
        ValueError: the sequences differ in length, are empty or hold non-positive values.
    """
    if len(reference_ms) != len(other_ms):
        raise ValueError(f"unpaired timings: {len(reference_ms)} vs {len(other_ms)} rounds")
    ratios = [float(o) / float(r) for r, o in zip(reference_ms, other_ms, strict=True) if r > 0]
    if len(ratios) != len(reference_ms):
        raise ValueError("reference timings must be positive")
    return mean_interval(ratios, confidence)


@dataclass(frozen=True)
class CompareSettings:
    """How :func:`compare_latency` interleaves and when it stops.

    Attributes:
        block: timed runs per model per round.
        statistic: a round's value of a model: the ``"median"`` of its block, or the
            ``"min"`` (robust on a machine shared with other jobs, where a run that was
            preempted is slower for reasons that have nothing to do with the model).
        block_warmup: untimed runs before each block (the caches another model evicted).
        min_rounds: rounds always run.
        max_rounds: rounds at most.
        target: stop once every ratio's relative half-width is at most this.
        tolerance: a half-width above this is flagged in reports (0.05 = +-5 %).
        confidence: confidence level of the intervals.
        max_seconds: stop after this much wall time (after ``min_rounds``); ``None``: no
            limit.
        seed: seed of the per-round order.
    """

    block: int = 3
    statistic: Literal["median", "min"] = "median"
    block_warmup: int = 1
    min_rounds: int = 5
    max_rounds: int = 30
    target: float = 0.02
    tolerance: float = 0.05
    confidence: float = 0.95
    max_seconds: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.statistic not in ("median", "min"):
            raise IAPruneError(f"statistic must be 'median' or 'min', got {self.statistic!r}")
        if self.block < 1 or self.block_warmup < 0:
            raise IAPruneError("block must be >= 1 and block_warmup >= 0")
        if not 2 <= self.min_rounds <= self.max_rounds:
            raise IAPruneError(
                f"need 2 <= min_rounds <= max_rounds, got {self.min_rounds}, {self.max_rounds}"
            )
        if not 0 < self.confidence < 1:
            raise IAPruneError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.target <= 0 or self.tolerance <= 0:
            raise IAPruneError("target and tolerance must be positive")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise IAPruneError("max_seconds must be positive")


@dataclass(frozen=True)
class LatencyComparison:
    """Result of :func:`compare_latency`.

    Attributes:
        reference: name of the model the ratios are taken against.
        rounds_ms: per model, the block statistic of every round (ms per batch).
        runs_ms: per model, every timed run in order.
        latency: per model, :func:`mean_interval` of its per-round medians (ms).
        ratios: per model, :func:`ratio_interval` against the reference (the reference's
            own entry is exactly 1).
        settings: how it was interleaved.
        env: how it was timed (backend, version, threads, batch size, ...), plus the
            wall time, number of rounds and the 1-minute load average before and after.
    """

    reference: str
    rounds_ms: dict[str, list[float]]
    runs_ms: dict[str, list[float]]
    latency: dict[str, Interval]
    ratios: dict[str, Interval]
    settings: CompareSettings
    env: dict[str, object] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Model names in the order they were given."""
        return list(self.rounds_ms)

    @property
    def rounds(self) -> int:
        """Number of interleaved rounds run."""
        return len(self.rounds_ms[self.reference])

    def flagged(self, tolerance: float | None = None) -> list[str]:
        """Models whose ratio (or, for the reference, latency) interval is too wide."""
        tol = self.settings.tolerance if tolerance is None else tolerance
        out = [n for n, r in self.ratios.items() if n != self.reference and r.wide(tol)]
        if self.latency[self.reference].wide(tol):
            out.insert(0, self.reference)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (per-round medians included, single runs left out)."""
        return {
            "reference": self.reference,
            "rounds": self.rounds,
            "latency_ms": {n: i.to_dict() for n, i in self.latency.items()},
            "ratio": {n: i.to_dict() for n, i in self.ratios.items()},
            "rounds_ms": self.rounds_ms,
            "flagged": self.flagged(),
            "settings": asdict(self.settings),
            "env": dict(self.env),
        }


def _loadavg() -> float | None:
    try:
        return round(float(os.getloadavg()[0]), 2)
    except (OSError, AttributeError):
        return None


def _precise_enough(rounds: Mapping[str, list[float]], ref: str, cfg: CompareSettings) -> bool:
    """Every ratio's interval (a lone model: its latency's) is within ``cfg.target``."""
    if len(rounds) == 1:
        return mean_interval(rounds[ref], cfg.confidence).half_width <= cfg.target
    return all(
        ratio_interval(rounds[ref], values, cfg.confidence).half_width <= cfg.target
        for n, values in rounds.items()
        if n != ref
    )


def compare_latency(
    models: Mapping[str, nn.Module],
    input_shape: Sequence[int],
    timing: TimingSettings | None = None,
    settings: CompareSettings | None = None,
    *,
    reference: str | None = None,
    backend: LatencyBackend | None = None,
    **overrides: Any,
) -> LatencyComparison:
    """Time ``models`` interleaved in this process and compare them to ``reference``.

    Args:
        models: name -> model (not modified); at least one.
        input_shape: per-sample input shape.
        timing: backend, batch size, threads (pinned for every model), device and the
            warm-up run once per model when it is prepared; ``repeats`` is not used
            (``settings`` decides how many runs).
        settings: interleaving and stopping rule (default :class:`CompareSettings()`).
        reference: the model ratios are taken against (default: the first).
        backend: a backend instance to use instead of ``timing.backend`` (tests pass a
            fake one).
        **overrides: individual timing fields replacing those of ``timing``.

    Raises:
        IAPruneError: no models, an unknown reference, bad settings, or an unknown or
            unavailable backend (all before any model is prepared).
    """
    if not models:
        raise IAPruneError("compare_latency needs at least one model")
    ref = next(iter(models)) if reference is None else reference
    if ref not in models:
        raise IAPruneError(f"unknown reference {ref!r}; valid: {', '.join(models)}")
    shape = check_input_shape(input_shape)
    timing_ = resolve_timing(timing, **overrides)
    cfg = settings or CompareSettings()
    timer = backend if backend is not None else get_backend(timing_.backend)
    names = list(models)
    rounds: dict[str, list[float]] = {n: [] for n in names}
    runs: dict[str, list[float]] = {n: [] for n in names}
    rng = random.Random(cfg.seed)
    load_before = _loadavg()
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        runners = {n: stack.enter_context(timer.runner(models[n], shape, timing_)) for n in names}
        for n in names:
            runners[n].time(timing_.warmup, 1)  # warm-up; the one timed run is dropped
        # every block collects garbage first: without freezing, that walks torch's ~10^5
        # objects (0.1 s) per block, longer than timing a small model
        stack.enter_context(frozen_gc())
        prepared_s = time.perf_counter() - start
        for r in range(cfg.max_rounds):
            order = list(names)
            rng.shuffle(order)
            for n in order:
                block = runners[n].time(cfg.block_warmup, cfg.block)
                runs[n].extend(block)
                stat = np.min(block) if cfg.statistic == "min" else np.median(block)
                rounds[n].append(float(stat))
            if r + 1 < cfg.min_rounds:
                continue
            if _precise_enough(rounds, ref, cfg):
                break
            elapsed = time.perf_counter() - start
            if cfg.max_seconds is not None and elapsed > cfg.max_seconds:
                break
        first = runners[ref]
        env: dict[str, object] = {
            "backend": timer.name,
            "version": first.version,
            "threads": first.threads,
            "device": first.device,
            "batch_size": timing_.batch_size,
            "input_shape": list(shape),
            **first.extra,
        }
    latency = {n: mean_interval(rounds[n], cfg.confidence) for n in names}
    ratios = {n: ratio_interval(rounds[ref], rounds[n], cfg.confidence) for n in names}
    env.update(
        interleaved=True,
        prepare_seconds=round(prepared_s, 3),
        seconds=round(time.perf_counter() - start, 3),
        load_before=load_before,
        load_after=_loadavg(),
    )
    return LatencyComparison(ref, rounds, runs, latency, ratios, cfg, env)
