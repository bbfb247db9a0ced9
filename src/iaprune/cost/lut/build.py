"""Measuring a latency table: every layer timed on its width grid, and the whole model.

:func:`measure_layers` orchestrates the other modules of the package (trace -> plan ->
timing or profile) for :meth:`iaprune.cost.lut.LatencyTable.build`, which then fits the
correction on calibration models (:mod:`~iaprune.cost.lut.fit`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from iaprune.cost._util import check_input_shape
from iaprune.cost.latency import LatencyBackend, get_backend
from iaprune.cost.lut.entry import LayerEntry, LayerKind
from iaprune.cost.lut.grid import grid_ratios
from iaprune.cost.lut.meta import table_meta
from iaprune.cost.lut.plan import block_input, block_ops, build_block, plan_layer
from iaprune.cost.lut.profile import profile_grid
from iaprune.cost.lut.timing import Statistic, measure_grid, statistic_of
from iaprune.cost.lut.trace import LayerSite, in_width, out_width, trace_layers
from iaprune.cost.macs import count_macs
from iaprune.errors import IAPruneError
from iaprune.timing import TimingSettings, resolve_timing

if TYPE_CHECKING:
    from iaprune.pruning.groups import ChannelGroup

Method = Literal["auto", "standalone", "profile"]
"""How a table's grid is timed (see :meth:`iaprune.cost.lut.LatencyTable.build`)."""


@dataclass(frozen=True)
class Measured:
    """What :func:`measure_layers` timed: the entries, the meta and the whole model's time.

    ``timer`` and ``settings`` are the backend and timing used, ``shape`` the checked
    per-sample input shape and ``points`` the number of grid points timed.
    """

    layers: list[LayerEntry]
    meta: dict[str, Any]
    full_ms: float
    timer: LatencyBackend
    settings: TimingSettings
    shape: tuple[int, ...]
    points: int


def measure_layers(
    model: nn.Module,
    input_shape: Sequence[int],
    groups: Sequence[ChannelGroup],
    timing: TimingSettings,
    *,
    grid: int | Sequence[float],
    min_ratio: float,
    rounds: int,
    statistic: Statistic,
    calibrate: int,
    seed: int,
    method: Method,
    samples: int,
    multiple: int | None = None,
    **overrides: Any,
) -> Measured:
    """Time every layer of ``model`` on its grid (arguments as :meth:`LatencyTable.build`)."""
    shape = check_input_shape(input_shape)
    settings = resolve_timing(timing, **overrides)
    if rounds < 1 or calibrate < 0 or samples < 1:
        raise IAPruneError("rounds and samples must be >= 1 and calibrate >= 0")
    if method not in ("auto", "standalone", "profile"):
        raise IAPruneError(f"method must be 'auto', 'standalone' or 'profile', got {method!r}")
    if statistic not in ("median", "min"):
        raise IAPruneError(f"statistic must be 'median' or 'min', got {statistic!r}")
    groups = list(groups)
    ratios = grid_ratios(grid, min_ratio) if isinstance(grid, int) else [float(r) for r in grid]
    if not ratios or any(not 0 < r <= 1 for r in ratios):
        raise IAPruneError(f"grid ratios must be in (0, 1], got {list(ratios)}")
    timer = get_backend(settings.backend)
    if method == "profile" and not timer.profiles_nodes:
        raise IAPruneError(
            f"latency backend {settings.backend!r} cannot profile single nodes: "
            "build the table with method 'standalone' or 'auto'"
        )
    meta = table_meta(timer, model, shape, groups, settings)
    sites = trace_layers(model, shape)
    multiple = timer.preferred_multiple if multiple is None else multiple
    if multiple < 1:
        raise IAPruneError(f"the table's channel multiple must be >= 1, got {multiple}")
    profiled = method == "profile" or (method == "auto" and timer.profiles_nodes)
    vector = timer.preferred_multiple
    plans = [
        plan_layer(site, groups, ratios, multiple, strict=profiled, vector=vector) for site in sites
    ]
    times = None
    if profiled:
        times = profile_grid(
            timer,
            model,
            shape,
            sites,
            plans,
            groups,
            ratios,
            settings,
            multiple=multiple,
            vector=vector,
            samples=samples,
            statistic=statistic,
            seed=seed,
        )
    used = "standalone" if times is None else "profile"
    if times is None:
        times = measure_grid(
            timer,
            model,
            shape,
            sites,
            plans,
            settings,
            rounds=rounds,
            statistic=statistic,
            seed=seed,
        )
    layers = [
        LayerEntry(
            name=site.name,
            kind=plan.kind,
            ops=block_ops(site),
            input_shape=site.input_shape,
            in_full=in_width(site.module),
            out_full=out_width(site.module),
            out_group=plan.out_group,
            in_groups=plan.in_groups,
            in_fixed=plan.in_fixed,
            in_mult=plan.in_mult,
            in_grid=plan.in_grid,
            out_grid=plan.out_grid,
            ms=times.entry(k, plan),
            calls=site.calls,
            macs_full=_full_macs(site, plan.kind),
        )
        for k, (site, plan) in enumerate(zip(sites, plans, strict=True))
    ]
    meta.update(
        grid=ratios,
        warmup=settings.warmup,
        repeats=settings.repeats,
        rounds=rounds,
        statistic=statistic,
        calibrate=calibrate,
        seed=seed,
        method=used,
        multiple=multiple,
        points=times.points,
        call_overhead_ms=times.overhead_ms,
        full_spread_ms=times.full.spread_ms,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    full_ms = statistic_of(times.full, statistic)
    return Measured(layers, meta, full_ms, timer, settings, shape, times.points)


def _full_macs(site: LayerSite, kind: LayerKind) -> int:
    """MACs of one call of ``site`` at full width (block built under a forked RNG)."""
    cin = in_width(site.module)
    with torch.random.fork_rng(devices=[]):
        block = build_block(site, kind, cin, out_width(site.module))
    return count_macs(block, block_input(site, cin))
