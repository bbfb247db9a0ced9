"""Timing a latency table's grid *inside the whole model*, from the runtime's per-node profile.

Stand-alone layer timings miss what a runtime does to the whole graph: ONNX Runtime fuses
BatchNorm, activations and residual adds into its convolutions, keeps tensors in a blocked
channel layout between them and reorders only where the layout changes. A layer timed alone
pays a session call, input and output copies and layout reorders that it does not pay in
the model, most of all when it is narrow; the layer sum then mispredicts small candidates
by tens of per cent.

:func:`profile_grid` instead times ``samples`` seeded random pruned *whole* models with the
backend's per-node profiler (:meth:`~iaprune.cost.latency.LatencyBackend.profile_nodes`,
ONNX Runtime's ``SessionOptions.enable_profiling``) and attributes every executed node to
a layer of the table (:func:`attribute`): each conv/linear node to its layer, matched in
execution order among the nodes of the same kernel and input size, and every other node
(pooling, layout reorders, global pooling) to the last layer before it, since its cost
follows that layer's output width. Each group keeps one of its grid widths in every
sample, so most layers are observed exactly at grid points; a grid point is the median of
its observations, and points never observed come from a least-squares fit
``a + b*in + c*out + d*in*out`` of the layer's observations (the form the table's bilinear
interpolation reproduces). Every sample is profiled next to the unpruned model, and both
are scaled by how fast the unpruned model ran at that moment against its median (a shared
machine changes speed over minutes; the same interleaving as
:func:`iaprune.cost.compare_latency`). Nodes are timed without a session call of their
own, so no per-call overhead is subtracted; what the nodes do not cover stays in the
table's offset.
"""

from __future__ import annotations

import logging
import random
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from iaprune.cost.latency import LatencyBackend, NodeTime
from iaprune.cost.lut.fit import prune_to
from iaprune.cost.lut.grid import channel_grid
from iaprune.cost.lut.plan import LayerPlan
from iaprune.cost.lut.timing import FULL_MODEL_REPEATS, GridTimes, Statistic, statistic_of
from iaprune.cost.lut.trace import LayerSite, is_conv
from iaprune.timing import TimingSettings

if TYPE_CHECKING:
    from iaprune.pruning.groups import ChannelGroup

__all__ = [
    "DEFAULT_SAMPLES",
    "LINEAR_OPS",
    "attribute",
    "profile_grid",
    "sample_keeps",
    "site_widths",
]

log = logging.getLogger(__name__)

DEFAULT_SAMPLES = 32
"""Random whole models profiled per table (plus the unpruned one)."""

LINEAR_OPS = frozenset({"Gemm", "MatMul", "FusedGemm", "FusedMatMul"})
"""Node types a ``nn.Linear`` layer becomes."""

CONV_OPS = frozenset({"Conv", "FusedConv", "NhwcConv", "NhwcFusedConv", "QLinearConv"})
"""Node types a convolution becomes."""


def _kernel(site: LayerSite) -> tuple[int, ...] | None:
    module = site.module
    return tuple(int(k) for k in module.kernel_size) if is_conv(module) else None


def _site_key(site: LayerSite) -> tuple[str, tuple[int, ...] | None, tuple[int, ...]]:
    if isinstance(site.module, nn.Linear):
        return ("linear", None, ())
    return ("conv", _kernel(site), tuple(int(s) for s in site.input_shape[1:]))


def _node_key(node: NodeTime) -> tuple[str, tuple[int, ...] | None, tuple[int, ...]] | None:
    if node.op in LINEAR_OPS:
        return ("linear", None, ())
    if node.op in CONV_OPS:
        return ("conv", node.kernel, node.in_spatial)
    return None


def attribute(nodes: Sequence[NodeTime], sites: Sequence[LayerSite]) -> list[float] | None:
    """Milliseconds of each site inside the model, or ``None`` when nodes and sites differ.

    Conv and linear nodes are matched to sites in execution order within each
    ``(kind, kernel, input size)`` class; the counts must agree class by class (a module
    called twice, or a runtime that splits a layer, does not match). Every other node is
    added to the last matched site before it; nodes before the first are not attributed.
    """
    if any(site.calls != 1 for site in sites):
        return None
    queues: dict[object, list[int]] = defaultdict(list)
    for k, site in enumerate(sites):
        queues[_site_key(site)].append(k)
    times = [0.0] * len(sites)
    current: int | None = None
    for node in nodes:
        key = _node_key(node)
        if key is None:
            if current is not None:
                times[current] += node.ms
            continue
        queue = queues.get(key)
        if not queue:
            return None
        current = queue.pop(0)
        times[current] += node.ms
    if any(queues.values()):
        return None
    return times


def site_widths(plan: LayerPlan, keep: Mapping[str, int]) -> tuple[int, int]:
    """``(in, out)`` widths of a planned layer when group ``g`` keeps ``keep[g]`` filters."""
    out = keep[plan.out_group] if plan.out_group is not None else plan.out_grid[-1]
    if plan.kind == "depthwise":
        return out, out
    cin = plan.in_fixed + plan.in_mult * sum(keep[g] for g in plan.in_groups)
    return (cin if plan.in_groups else plan.in_grid[-1]), out


def sample_keeps(
    groups: Sequence[ChannelGroup],
    ratios: Sequence[float],
    n: int,
    seed: int,
    multiple: int = 8,
    vector: int = 1,
) -> list[dict[str, int]]:
    """``n`` seeded configurations; each group keeps one of its grid widths, at random."""
    rng = random.Random(seed + 7)
    grids = {
        g.name: channel_grid(g.channels, ratios, multiple=multiple, strict=True, vector=vector)
        for g in groups
    }
    return [{name: rng.choice(grid) for name, grid in grids.items()} for _ in range(n)]


def _fit_surface(points: Sequence[tuple[int, int, float]]) -> np.ndarray | None:
    """Least-squares ``[a, b, c, d]`` of ``a + b*in + c*out + d*in*out`` (None: too few)."""
    distinct = {(i, o) for i, o, _ in points}
    if len(distinct) < 4:
        return None
    arr = np.asarray(points, dtype=float)
    design = np.stack([np.ones(len(arr)), arr[:, 0], arr[:, 1], arr[:, 0] * arr[:, 1]], axis=1)
    coef, *_ = np.linalg.lstsq(design, arr[:, 2], rcond=None)
    return coef


def _fill(plan: LayerPlan, points: Sequence[tuple[int, int, float]]) -> list[list[float]]:
    """The layer's grid: the median observation at a grid point, else the fitted surface."""
    seen: dict[tuple[int, int], list[float]] = defaultdict(list)
    for cin, cout, ms in points:
        seen[cin, cout].append(ms)
    coef = _fit_surface(points)
    fallback = statistics.median(ms for _, _, ms in points)
    rows = []
    for cin in plan.in_grid:
        row = []
        for cout in plan.out_grid:
            if seen.get((cin, cout)):
                row.append(statistics.median(seen[cin, cout]))
            elif coef is not None:
                row.append(float(coef @ np.array([1.0, cin, cout, cin * cout])))
            else:
                row.append(fallback)
        rows.append([max(v, 0.0) for v in row])
    return rows


def profile_grid(
    timer: LatencyBackend,
    model: nn.Module,
    shape: tuple[int, ...],
    sites: Sequence[LayerSite],
    plans: Sequence[LayerPlan],
    groups: Sequence[ChannelGroup],
    ratios: Sequence[float],
    timing: TimingSettings,
    *,
    multiple: int,
    vector: int = 1,
    samples: int,
    statistic: Statistic,
    seed: int,
) -> GridTimes | None:
    """Every layer's grid from the per-node profiles of random whole models (see module doc).

    Returns ``None`` (the caller times stand-alone blocks instead) when the profiled nodes
    cannot be matched to the traced layers.
    """
    full_keep = {g.name: g.channels for g in groups}
    keeps = sample_keeps(groups, ratios, samples, seed, multiple, vector)
    pairs: list[tuple[dict[str, int], list[float], list[float]]] = []
    with torch.random.fork_rng(devices=[]):
        for keep in keeps:
            pruned = prune_to(model, shape, groups, keep)
            full = attribute(timer.profile_nodes(model, shape, timing, statistic), sites)
            part = attribute(timer.profile_nodes(pruned, shape, timing, statistic), sites)
            if full is None or part is None:
                log.info("latency table: the runtime's nodes do not match the layers")
                return None
            pairs.append((keep, full, part))
    # each sample is profiled next to the unpruned model; scaling both by how fast the
    # unpruned model ran then (against its median) takes out a busy machine's drift
    reference = statistics.median(sum(full) for _, full, _ in pairs)
    observed: list[list[tuple[int, int, float]]] = [[] for _ in sites]
    for keep, full, part in pairs:
        factor = reference / sum(full) if sum(full) > 0 else 1.0
        for k in range(len(sites)):
            observed[k].append((*site_widths(plans[k], full_keep), full[k] * factor))
            observed[k].append((*site_widths(plans[k], keep), part[k] * factor))
    best = {
        (k, i, j): value
        for k, plan in enumerate(plans)
        for i, row in enumerate(_fill(plan, observed[k]))
        for j, value in enumerate(row)
    }
    long = timing.with_(repeats=max(timing.repeats, FULL_MODEL_REPEATS))
    whole = timer.measure(model, shape, long)
    log.debug("latency table: full model %.3f ms", statistic_of(whole, statistic))
    return GridTimes(best, whole, 0.0, 2 * len(keeps))
