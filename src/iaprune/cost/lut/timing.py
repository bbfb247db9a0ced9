"""Timing a latency table's grid: every planned layer block at every grid point, and the model.

:func:`measure_grid` times the stand-alone blocks of :mod:`~iaprune.cost.lut.plan` in a
seeded shuffled order (``rounds`` passes, keeping each point's best statistic), then the
whole model and the runtime's per-call overhead. A better measurement scheme (interleaved
A/B timing, confidence intervals) replaces this module without touching the others.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from iaprune.cost.latency import LatencyBackend, LatencyResult, frozen_gc
from iaprune.cost.lut.plan import LayerPlan, block_input, build_block
from iaprune.cost.lut.trace import LayerSite
from iaprune.errors import IAPruneError
from iaprune.inference import model_dtype
from iaprune.timing import TimingSettings

__all__ = [
    "FULL_MODEL_REPEATS",
    "GridTimes",
    "Statistic",
    "call_overhead",
    "frozen_gc",
    "measure_grid",
    "statistic_of",
]

Statistic = Literal["median", "min"]
"""Which statistic of the timed runs a table stores."""

FULL_MODEL_REPEATS = 30
"""The whole model and the per-call probe are timed with at least this many repeats."""


def statistic_of(result: LatencyResult, statistic: Statistic) -> float:
    """The ``"median"`` or the ``"min"`` of a result's timed runs, in milliseconds."""
    if statistic == "median":
        return result.median_ms
    if statistic == "min":
        return min(result.runs_ms)
    raise IAPruneError(f"statistic must be 'median' or 'min', got {statistic!r}")


def call_overhead(
    timer: LatencyBackend,
    model: nn.Module,
    timing: TimingSettings,
    statistic: Statistic,
) -> float:
    """Latency of a trivial module (1x1 conv on one pixel): the runtime's per-call cost.

    Every stand-alone layer timing includes it once (a session run, Python dispatch,
    input copies); inside the whole model it is paid once, not once per layer. It is
    subtracted from every table entry, so the offset does not grow negative with the
    number of layers and small candidates are not predicted below zero.
    """
    probe = nn.Conv2d(1, 1, 1).to(model_dtype(model)).eval()
    return statistic_of(timer.measure(probe, (1, 1, 1), timing), statistic)


@dataclass(frozen=True)
class GridTimes:
    """What :func:`measure_grid` measured.

    Attributes:
        best: ``best[k, i, j]``: the statistic (ms) of layer ``k`` at
            ``(in_grid[i], out_grid[j])`` of its plan, the smallest over the rounds.
        full: the whole model's timing.
        overhead_ms: the per-call overhead (:func:`call_overhead`).
        points: number of grid points per round.
    """

    best: dict[tuple[int, int, int], float]
    full: LatencyResult
    overhead_ms: float
    points: int

    def entry(self, k: int, plan: LayerPlan) -> tuple[tuple[float, ...], ...]:
        """Layer ``k``'s grid minus the per-call overhead (floored at 0), rows = inputs."""
        return tuple(
            tuple(
                max(self.best[k, i, j] - self.overhead_ms, 0.0) for j in range(len(plan.out_grid))
            )
            for i in range(len(plan.in_grid))
        )


def measure_grid(
    timer: LatencyBackend,
    model: nn.Module,
    shape: tuple[int, ...],
    sites: Sequence[LayerSite],
    plans: Sequence[LayerPlan],
    timing: TimingSettings,
    *,
    rounds: int,
    statistic: Statistic,
    seed: int,
) -> GridTimes:
    """Time every grid point of every layer ``rounds`` times, then the whole model.

    The order of the points is shuffled with ``random.Random(seed)`` each round (so slow
    phases of a busy machine spread over the grid); block initialisation runs under a
    forked RNG, so the caller's RNG does not move. The whole model and the overhead probe
    use ``max(timing.repeats, FULL_MODEL_REPEATS)`` repeats.
    """
    jobs = [
        (k, i, j)
        for k, plan in enumerate(plans)
        for i in range(len(plan.in_grid))
        for j in range(len(plan.out_grid))
    ]
    best: dict[tuple[int, int, int], float] = {}
    rng = random.Random(seed)
    long = timing.with_(repeats=max(timing.repeats, FULL_MODEL_REPEATS))
    with torch.random.fork_rng(devices=[]), frozen_gc():
        for _ in range(rounds):
            rng.shuffle(jobs)
            for k, i, j in jobs:
                site, plan = sites[k], plans[k]
                cin, cout = plan.in_grid[i], plan.out_grid[j]
                if plan.kind == "depthwise":
                    cin = cout
                block = build_block(site, plan.kind, cin, cout)
                res = timer.measure(block, block_input(site, cin), timing)
                best[k, i, j] = min(best.get((k, i, j), math.inf), statistic_of(res, statistic))
        full = timer.measure(model, shape, long)
        overhead = call_overhead(timer, model, long, statistic)
    return GridTimes(best, full, overhead, len(jobs))
