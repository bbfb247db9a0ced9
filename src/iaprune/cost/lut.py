"""Per-layer latency lookup table: predict a pruned model's latency from its kept widths.

NetAdapt (Yang et al., 2018) and ChamNet (Dai et al., 2019) avoid timing every candidate
of an architecture search by measuring each layer once, for a grid of channel counts,
and adding the looked-up layer latencies. :class:`LatencyTable` does that for the
channel groups of :func:`iaprune.pruning.find_groups`:

* **What is measured.** Every ``nn.Conv*d`` and ``nn.Linear`` call of one forward pass
  of the unpruned model is a *layer*. A conv is timed together with the BatchNorm that
  directly consumes its output and the parameter-free activation (ReLU, ...) that
  directly consumes the BatchNorm's output, when the model has them, because those ops
  scale with the conv's output width and run fused in deployment runtimes. Each layer
  is rebuilt as a small stand-alone module at the input spatial size it sees in the
  model (captured with forward hooks) and timed with a registered latency backend
  (:func:`iaprune.cost.latency.get_backend`), for every ``(in_channels, out_channels)``
  pair of a grid: by default 7 widths per dimension from 5 % of the width to the full
  width, interior points rounded to multiples of 8, the full width always included.
* **Widths of a candidate.** A conv's output width is the kept count of the channel
  group whose ``convs`` contain it (unpruned if none); its input width is the sum of the
  kept counts of the groups whose ``consumers`` contain it, plus any input channels no
  group covers (the image channels of the first conv). A depthwise conv
  (``groups == in == out``) has one width, its group's. A linear layer after a
  flatten of ``k`` spatial positions has ``k`` inputs per kept channel; its output
  width never changes. Grouped (non-depthwise) convs are timed at full width only.
* **Prediction.** ``predict(keep) = scale * sum(layer latencies) + offset`` where each
  layer latency is bilinearly interpolated in ``(in, out)`` between the grid points
  (exact at them; latency is close to ``a + b*in + c*out + d*in*out``, which bilinear
  interpolation reproduces exactly) and linearly extrapolated outside them.
* **Per-call overhead.** Each stand-alone timing includes the runtime's fixed cost of one
  call (an ONNX Runtime session run, Python dispatch), which the whole model pays once, not
  once per layer. The latency of a trivial 1x1 conv is measured and subtracted from every
  entry (floored at 0), so tables of deep models do not predict negative latencies.
* **The offset** accounts for everything not in a layer: pooling, residual adds, the
  activations after them, flatten, Python and runtime dispatch between layers. It is
  ``measured full-model latency - scale * sum of layer latencies at full width``, so
  the unpruned model is predicted exactly; it is a constant, so it does not shrink with
  pruning (a source of error for models with many element-wise ops), and it can be
  negative when stand-alone layers cost more than inside the model.
* **Calibration** (``calibrate=N``, off by default): N seeded random pruned models are
  timed as well, and ``scale`` is fitted by least squares on the line through the
  full-model point, which absorbs a systematic bias of the layer sum.

Tables are JSON files. :meth:`LatencyTable.meta` records what the measurements are
valid for: backend and its version, torch version, device and CPU, threads, batch
size, input shape, dtype and fingerprints of the architecture and of the channel
groups. :func:`load_or_build` rebuilds (with a :class:`LatencyTableWarning`) a table
whose meta does not match the current settings instead of silently using it.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import gc
import hashlib
import json
import logging
import math
import os
import platform
import random
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Literal

import torch
from torch import nn

from iaprune.cost._base import CostReport
from iaprune.cost._util import check_input_shape, eval_mode, model_dtype
from iaprune.cost.latency import LatencyBackend, LatencyResult, get_backend
from iaprune.cost.latency._base import check_timing_args
from iaprune.cost.measure import measure_cost
from iaprune.devices import model_device
from iaprune.errors import IAPruneError
from iaprune.fileio import check_output_file, write_atomic
from iaprune.pruning.groups import ChannelGroup

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "STALE_KEYS",
    "LatencyTable",
    "LatencyTableWarning",
    "LayerEntry",
    "PredictedCost",
    "architecture_fingerprint",
    "channel_grid",
    "default_table_path",
    "expected_meta",
    "grid_ratios",
    "groups_fingerprint",
    "load_or_build",
    "predicted_cost",
]

log = logging.getLogger(__name__)

FORMAT = "iaprune-latency-table"
"""Value of the ``format`` field of a table file."""

FORMAT_VERSION = 1
"""Version of the table file layout; a table of another version is rebuilt."""

STALE_KEYS: tuple[str, ...] = (
    "format_version",
    "backend",
    "backend_version",
    "torch_version",
    "device",
    "device_name",
    "machine",
    "threads",
    "batch_size",
    "input_shape",
    "dtype",
    "fingerprint",
    "groups_fingerprint",
)
"""Meta fields that must match for a stored table to be reused.

Grid, warm-up, repeats and calibration settings are recorded in the meta too but only
change the quality of the measurements, not what they are valid for, so a table built
with other such settings is reused.
"""

SCALE_BOUNDS = (0.5, 2.0)
"""Accepted range of the calibration scale; a fit outside it falls back to 1."""

LayerKind = Literal["conv", "depthwise", "linear", "fixed"]
Statistic = Literal["median", "min"]

PredictedCost = Callable[[nn.Module, Mapping[str, int] | None], CostReport]
"""A search cost function (``iaprune.search.evaluate.CostFunction``) backed by a table."""

_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
    nn.Mish,
)
_CONV_CLASSES: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


@contextlib.contextmanager
def _frozen_gc() -> Iterator[None]:
    """Move existing objects to the GC's permanent generation while measuring.

    The timing helper collects garbage before every measurement; with torch imported
    that walks ~10^5 objects (0.1-0.2 s) per grid point, longer than timing a small
    layer. Frozen objects are skipped by the collector (still freed by reference
    counting); they are unfrozen afterwards unless something else froze objects before.
    """
    was_frozen = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not was_frozen:
            gc.unfreeze()


class LatencyTableWarning(UserWarning):
    """A stored latency table was unusable (stale or unreadable) and is being rebuilt."""


def _stat(result: LatencyResult, statistic: Statistic) -> float:
    if statistic == "median":
        return result.median_ms
    if statistic == "min":
        return min(result.runs_ms)
    raise IAPruneError(f"statistic must be 'median' or 'min', got {statistic!r}")


# -- grids and interpolation -----------------------------------------------------------


def grid_ratios(points: int, min_ratio: float = 0.05) -> list[float]:
    """``points`` evenly spaced keep-ratios from ``min_ratio`` to 1 (both included)."""
    if points < 1:
        raise IAPruneError(f"a latency grid needs >= 1 point per dimension, got {points}")
    if not 0 < min_ratio <= 1:
        raise IAPruneError(f"min_ratio must be in (0, 1], got {min_ratio}")
    if points == 1:
        return [1.0]
    step = (1.0 - min_ratio) / (points - 1)
    return [min_ratio + i * step for i in range(points - 1)] + [1.0]


def channel_grid(
    full: int, ratios: Sequence[float], *, multiple: int = 8, minimum: int = 1
) -> list[int]:
    """Sorted distinct channel counts ``round(r * full)`` for ``r`` in ``ratios``, plus ``full``.

    When ``full >= multiple * len(ratios)`` (grid steps of at least ``multiple``),
    points below the full width are rounded to the nearest multiple of ``multiple``
    (SIMD-friendly widths, as a search with a channel step would pick). Every point is
    clamped to ``[minimum, full]``.
    """
    if full < 1:
        raise ValueError(f"full width must be >= 1, got {full}")
    minimum = max(1, min(minimum, full))
    align = multiple > 1 and full >= multiple * len(ratios)
    values = {full}
    for r in ratios:
        v = float(r) * full
        if align and r < 1 and round(v / multiple) >= 1:
            v = multiple * round(v / multiple)
        values.add(min(full, max(minimum, int(round(v)))))
    return sorted(values)


def _segment(grid: Sequence[int], x: float) -> tuple[int, int, float]:
    """Indices ``i0, i1`` and weight ``w`` with ``value = (1 - w) v[i0] + w v[i1]``.

    Linear inside the grid (exact at its points) and linear extrapolation from the
    first or last segment outside it; a one-point grid is constant.
    """
    n = len(grid)
    if n == 1:
        return 0, 0, 0.0
    j = min(max(bisect.bisect_right(grid, x), 1), n - 1)
    lo, hi = grid[j - 1], grid[j]
    return j - 1, j, (x - lo) / (hi - lo)


# -- table entries ------------------------------------------------------------------


@dataclass(frozen=True)
class LayerEntry:
    """Measured latencies of one layer (conv [+ BN [+ activation]] or linear).

    Attributes:
        name: the layer's module name (``name#k`` for the k-th distinct input shape
            of a module called with several shapes).
        kind: ``conv``, ``depthwise`` (one width: ``in == out == groups``), ``linear``
            or ``fixed`` (timed at full width only).
        ops: module classes timed together, e.g. ``["Conv2d", "BatchNorm2d", "ReLU"]``.
        input_shape: per-sample input shape the layer sees in the unpruned model.
        in_full: input width (channels / features) in the unpruned model.
        out_full: output width in the unpruned model.
        out_group: channel group whose ``convs`` contain the layer (its output width),
            or ``None`` when its output is never pruned.
        in_groups: channel groups whose ``consumers`` contain the layer.
        in_fixed: input channels no group covers (e.g. image channels).
        in_mult: input features per kept channel (``H*W`` for a linear after a
            flatten, else 1); ``in = in_fixed + in_mult * sum(keep[g] for g in in_groups)``.
        in_grid: input widths measured (one point when the input width never changes).
        out_grid: output widths measured (for ``depthwise``: the widths).
        ms: ``ms[i][j]`` = median latency in milliseconds at ``(in_grid[i], out_grid[j])``.
        calls: how many times the layer runs per forward pass with this input shape.
    """

    name: str
    kind: LayerKind
    ops: tuple[str, ...]
    input_shape: tuple[int, ...]
    in_full: int
    out_full: int
    out_group: str | None
    in_groups: tuple[str, ...]
    in_fixed: int
    in_mult: int
    in_grid: tuple[int, ...]
    out_grid: tuple[int, ...]
    ms: tuple[tuple[float, ...], ...]
    calls: int = 1

    def widths(self, keep: Mapping[str, int]) -> tuple[int, int]:
        """``(in, out)`` width of this layer when every group ``g`` keeps ``keep[g]``.

        Groups missing from ``keep`` are at full width. For ``depthwise`` both are the
        single width; for ``fixed`` both are the full widths.
        """
        if self.kind == "fixed":
            return self.in_full, self.out_full
        out = self.out_full if self.out_group is None else int(keep[self.out_group])
        if self.kind == "depthwise":
            return out, out
        cin = self.in_fixed + self.in_mult * sum(int(keep[g]) for g in self.in_groups)
        return cin, out

    def lookup(self, cin: float, cout: float) -> float:
        """Bilinearly interpolated latency (ms) of one call at ``(cin, cout)``, >= 0.

        Exact at grid points; linear extrapolation outside the grid. ``cin`` is
        ignored for ``depthwise`` layers.
        """
        i0, i1, wi = _segment(self.in_grid, cin)
        j0, j1, wj = _segment(self.out_grid, cout)
        m = self.ms
        if wi == 0.0 and wj == 0.0:
            return m[i0][j0]
        low = (1.0 - wj) * m[i0][j0] + wj * m[i0][j1]
        high = (1.0 - wj) * m[i1][j0] + wj * m[i1][j1]
        return max(0.0, (1.0 - wi) * low + wi * high)

    def latency(self, keep: Mapping[str, int]) -> float:
        """Latency (ms) of all ``calls`` of this layer for group widths ``keep``."""
        cin, cout = self.widths(keep)
        return self.calls * self.lookup(cin, cout)

    @property
    def points(self) -> int:
        """Number of measured grid points."""
        return len(self.in_grid) * len(self.out_grid)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; inverse of :meth:`from_dict`."""
        return {
            "name": self.name,
            "kind": self.kind,
            "ops": list(self.ops),
            "input_shape": list(self.input_shape),
            "in_full": self.in_full,
            "out_full": self.out_full,
            "out_group": self.out_group,
            "in_groups": list(self.in_groups),
            "in_fixed": self.in_fixed,
            "in_mult": self.in_mult,
            "in_grid": list(self.in_grid),
            "out_grid": list(self.out_grid),
            "ms": [list(row) for row in self.ms],
            "calls": self.calls,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerEntry:
        """Rebuild an entry written by :meth:`to_dict`; checks the grid shape."""
        entry = cls(
            name=str(data["name"]),
            kind=data["kind"],
            ops=tuple(str(o) for o in data["ops"]),
            input_shape=tuple(int(d) for d in data["input_shape"]),
            in_full=int(data["in_full"]),
            out_full=int(data["out_full"]),
            out_group=None if data["out_group"] is None else str(data["out_group"]),
            in_groups=tuple(str(g) for g in data["in_groups"]),
            in_fixed=int(data["in_fixed"]),
            in_mult=int(data["in_mult"]),
            in_grid=tuple(int(v) for v in data["in_grid"]),
            out_grid=tuple(int(v) for v in data["out_grid"]),
            ms=tuple(tuple(float(v) for v in row) for row in data["ms"]),
            calls=int(data.get("calls", 1)),
        )
        if entry.kind not in ("conv", "depthwise", "linear", "fixed"):
            raise ValueError(f"layer {entry.name}: unknown kind {entry.kind!r}")
        if len(entry.ms) != len(entry.in_grid) or any(
            len(row) != len(entry.out_grid) for row in entry.ms
        ):
            raise ValueError(f"layer {entry.name}: latency grid does not match its widths")
        if list(entry.in_grid) != sorted(set(entry.in_grid)) or list(entry.out_grid) != sorted(
            set(entry.out_grid)
        ):
            raise ValueError(f"layer {entry.name}: grid widths must be strictly increasing")
        return entry


# -- fingerprints and meta ------------------------------------------------------------


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def architecture_fingerprint(model: nn.Module) -> str:
    """16 hex digits identifying the architecture: every module's name, class and settings.

    Weights do not enter it, so a trained and an untrained model share the fingerprint;
    any change of a layer's width, kernel, stride, ... changes it.
    """
    layout = [
        [name, f"{type(m).__module__}.{type(m).__qualname__}", m.extra_repr()]
        for name, m in model.named_modules()
    ]
    return _digest(layout)


def groups_fingerprint(groups: Iterable[ChannelGroup]) -> str:
    """16 hex digits identifying the channel groups (names, widths, convs, consumers)."""
    return _digest([[g.name, g.channels, list(g.convs), list(g.consumers)] for g in groups])


def _device_name(device: str) -> str:
    """CPU model (from /proc/cpuinfo) or CUDA device name, for the table's meta."""
    if device.startswith("cuda") and torch.cuda.is_available():
        with contextlib.suppress(Exception):
            return torch.cuda.get_device_name(torch.device(device))
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def expected_meta(
    model: nn.Module,
    input_shape: Sequence[int],
    groups: Sequence[ChannelGroup],
    *,
    backend: str = "torch",
    batch_size: int = 1,
    threads: int | None = 1,
    device: str = "cpu",
) -> dict[str, Any]:
    """The :data:`STALE_KEYS` meta a table measured now with these settings would have.

    The backend's version, normalised device and effective thread count come from one
    untimed probe run of a 1x1 conv, so any backend reports them the same way it does
    when measuring.
    """
    shape = check_input_shape(input_shape)
    check_timing_args(batch_size=batch_size, threads=threads, warmup=0, repeats=1)
    timer = get_backend(backend)
    return _meta(timer, model, shape, groups, batch_size=batch_size, threads=threads, device=device)


def _meta(
    timer: LatencyBackend,
    model: nn.Module,
    shape: tuple[int, ...],
    groups: Sequence[ChannelGroup],
    *,
    batch_size: int,
    threads: int | None,
    device: str,
) -> dict[str, Any]:
    with torch.random.fork_rng(devices=[]):  # the caller's RNG must not move
        probe = nn.Conv2d(1, 1, 1).to(model_dtype(model))
    env = timer.measure(
        probe, (1, 2, 2), batch_size=1, threads=threads, warmup=0, repeats=1, device=device
    ).env
    dev = str(env.get("device", device))
    return {
        "format_version": FORMAT_VERSION,
        "backend": timer.name,
        "backend_version": str(env.get("version", "")),
        "torch_version": torch.__version__,
        "device": dev,
        "device_name": _device_name(dev),
        "machine": platform.machine(),
        "threads": env.get("threads", threads),
        "batch_size": int(batch_size),
        "input_shape": list(shape),
        "dtype": str(model_dtype(model)).removeprefix("torch."),
        "fingerprint": architecture_fingerprint(model),
        "groups_fingerprint": groups_fingerprint(groups),
    }


def _describe(meta: Mapping[str, Any], keys: Iterable[str]) -> str:
    return ", ".join(f"{k}={meta.get(k)!r}" for k in keys)


def default_table_path(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    backend: str = "torch",
    batch_size: int = 1,
    threads: int | None = 1,
    device: str = "cpu",
) -> Path:
    """``$XDG_CACHE_HOME/iaprune/lut/<fingerprint>-<backend>-<shape>-b<batch>-t<threads>-<device>.json``.

    ``$IAPRUNE_LUT_DIR`` replaces the directory. The name only separates tables of
    different settings; validity is still checked against the meta on loading.
    """
    shape = "x".join(str(d) for d in check_input_shape(input_shape))
    base = os.environ.get("IAPRUNE_LUT_DIR")
    if base:
        root = Path(base)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(cache) / "iaprune" / "lut"
    tag = "auto" if threads is None else str(threads)
    dev = device.replace(":", "")
    name = f"{architecture_fingerprint(model)}-{backend}-{shape}-b{batch_size}-t{tag}-{dev}.json"
    return root / name


# -- tracing the layers of a model -------------------------------------------------------


@dataclass
class _LayerSite:
    """One layer found by tracing: the module, its fused followers and its input shape."""

    name: str
    module: nn.Module
    input_shape: tuple[int, ...]
    norm: nn.Module | None = None
    act: nn.Module | None = None
    calls: int = 1


@dataclass(eq=False)
class _Call:
    index: int
    name: str
    module: nn.Module
    input: Any
    output: Any
    used: bool = False


def _is_conv(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.conv._ConvNd) and not m.transposed


def _trace(model: nn.Module, shape: tuple[int, ...]) -> list[_LayerSite]:
    """Conv/linear calls of one forward pass, in order, with their BN and activation."""
    calls: list[_Call] = []

    def hook(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def record(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            first = inputs[0] if inputs else None
            calls.append(_Call(len(calls), name, module, first, output))

        return record

    handles = [
        m.register_forward_hook(hook(name))
        for name, m in model.named_modules()
        if _is_conv(m) or isinstance(m, nn.Linear) or not any(True for _ in m.children())
    ]
    x = torch.zeros((1, *shape), device=model_device(model), dtype=model_dtype(model))
    try:
        with eval_mode(model), torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()

    def consumer(start: int, tensor: Any, kinds: tuple[type[nn.Module], ...]) -> _Call | None:
        for call in calls[start:]:
            if call.input is tensor:
                if isinstance(call.module, kinds) and not call.used:
                    return call
                return None
        return None

    sites: dict[tuple[str, tuple[int, ...]], _LayerSite] = {}
    per_module: dict[str, int] = {}
    for i, call in enumerate(calls):
        module = call.module
        if not (_is_conv(module) or isinstance(module, nn.Linear)):
            continue
        if not isinstance(call.input, torch.Tensor):
            continue
        in_shape = tuple(int(d) for d in call.input.shape[1:])
        key = (call.name, in_shape)
        if key in sites:
            sites[key].calls += 1
            continue
        k = per_module.get(call.name, 0)
        per_module[call.name] = k + 1
        site = _LayerSite(call.name if k == 0 else f"{call.name}#{k}", module, in_shape)
        if _is_conv(module):
            norm = consumer(i + 1, call.output, (nn.modules.batchnorm._BatchNorm,))
            if norm is not None and norm.module.num_features == module.out_channels:
                norm.used = True
                site.norm = norm.module
                act = consumer(norm.index + 1, norm.output, _ACTIVATIONS)
                if act is not None and not any(True for _ in act.module.parameters()):
                    act.used = True
                    site.act = act.module
        sites[key] = site
    if not sites:
        raise IAPruneError("the model has no conv or linear layer to build a latency table for")
    return list(sites.values())


def _in_width(module: nn.Module) -> int:
    return int(module.in_features if isinstance(module, nn.Linear) else module.in_channels)


def _out_width(module: nn.Module) -> int:
    return int(module.out_features if isinstance(module, nn.Linear) else module.out_channels)


@dataclass(frozen=True)
class _Plan:
    """How a traced layer's widths follow the groups, and which widths to measure."""

    kind: LayerKind
    out_group: str | None
    in_groups: tuple[str, ...]
    in_fixed: int
    in_mult: int
    in_grid: tuple[int, ...]
    out_grid: tuple[int, ...]


def _plan(
    site: _LayerSite,
    groups: Sequence[ChannelGroup],
    ratios: Sequence[float],
) -> _Plan:
    module = site.module
    base = site.name.split("#", 1)[0]
    in_full, out_full = _in_width(module), _out_width(module)
    out_groups = [g for g in groups if base in g.convs]
    in_groups = [g for g in groups if base in g.consumers]
    out_group = out_groups[0] if out_groups else None

    def axis(variable: int, fixed: int, mult: int, n_groups: int) -> tuple[int, ...]:
        if variable <= 0:
            return (fixed + variable,)
        minimum = max(mult * n_groups, 1)
        values = channel_grid(variable, ratios, multiple=8 * mult, minimum=minimum)
        return tuple(fixed + v for v in values)

    fixed = _Plan("fixed", None, (), in_full, 1, (in_full,), (out_full,))
    if _is_conv(module) and module.groups > 1:
        depthwise = module.groups == in_full == out_full
        source = out_group or (in_groups[0] if len(in_groups) == 1 else None)
        if not depthwise or source is None:
            return fixed
        return _Plan("depthwise", source.name, (), 0, 1, (in_full,), axis(out_full, 0, 1, 1))

    out_grid: tuple[int, ...] = (out_full,)
    if out_group is not None and not isinstance(module, nn.Linear):
        out_grid = axis(out_full, 0, 1, 1)
    covered = sum(g.channels for g in in_groups)
    mult, in_fixed = 1, in_full - covered
    if in_groups and isinstance(module, nn.Linear) and in_full > covered and in_full % covered == 0:
        mult, in_fixed = in_full // covered, 0
    if in_fixed < 0:  # the groups do not add up to this layer's input: leave it unpruned
        log.warning("latency table: cannot map the input width of %s to groups", site.name)
        in_groups, mult, in_fixed = [], 1, in_full
    in_grid = axis(mult * covered if in_groups else 0, in_fixed, mult, len(in_groups))
    kind: LayerKind = "linear" if isinstance(module, nn.Linear) else "conv"
    return _Plan(
        kind,
        None if isinstance(module, nn.Linear) or out_group is None else out_group.name,
        tuple(g.name for g in in_groups),
        in_fixed,
        mult,
        in_grid,
        out_grid,
    )


def _block(site: _LayerSite, kind: LayerKind, cin: int, cout: int) -> nn.Module:
    """A stand-alone module computing the layer (with its BN / activation) at ``cin, cout``."""
    module = site.module
    parts: list[nn.Module] = []
    if isinstance(module, nn.Linear):
        parts.append(nn.Linear(cin, cout, bias=module.bias is not None))
    else:
        cls = _CONV_CLASSES[len(module.kernel_size)]
        groups = cout if kind == "depthwise" else module.groups
        parts.append(
            cls(
                cin,
                cout,
                module.kernel_size,
                stride=module.stride,
                padding=module.padding,
                dilation=module.dilation,
                groups=groups,
                bias=module.bias is not None,
                padding_mode=module.padding_mode,
            )
        )
        if site.norm is not None:
            norm = site.norm
            parts.append(
                type(norm)(
                    cout,
                    eps=norm.eps,
                    momentum=norm.momentum,
                    affine=norm.affine,
                    track_running_stats=norm.track_running_stats,
                )
            )
        if site.act is not None:
            parts.append(copy.deepcopy(site.act))
    block = parts[0] if len(parts) == 1 else nn.Sequential(*parts)
    return block.to(model_dtype(module)).eval()


def _call_overhead(
    timer: LatencyBackend,
    model: nn.Module,
    timing: Mapping[str, Any],
    statistic: Statistic,
    repeats: int,
) -> float:
    """Latency of a trivial module (1x1 conv on one pixel): the runtime's per-call cost.

    Every stand-alone layer timing includes it once (a session run, Python dispatch,
    input copies); inside the whole model it is paid once, not once per layer. It is
    subtracted from every table entry, so the offset does not grow negative with the
    number of layers and small candidates are not predicted below zero.
    """
    probe = nn.Conv2d(1, 1, 1).to(model_dtype(model)).eval()
    return _stat(timer.measure(probe, (1, 1, 1), **{**timing, "repeats": repeats}), statistic)


def _block_input(site: _LayerSite, cin: int) -> tuple[int, ...]:
    if isinstance(site.module, nn.Linear):
        return (*site.input_shape[:-1], cin)
    return (cin, *site.input_shape[1:])


def _ops(site: _LayerSite) -> tuple[str, ...]:
    mods = [site.module, site.norm, site.act]
    return tuple(type(m).__name__ for m in mods if m is not None)


# -- the table ------------------------------------------------------------------------


class LatencyTable:
    """Per-layer latency lookup table of one model for one runtime configuration.

    Build with :meth:`build` (measures) or :func:`load_or_build` (reuses a valid
    stored table); query with :meth:`predict`. Latencies are per batch of
    ``meta["batch_size"]`` samples, in milliseconds, like ``CostReport.latency_ms``.

    Attributes:
        layers: one :class:`LayerEntry` per layer, in execution order.
        offset_ms: constant part of every prediction (see the module docstring).
        scale: factor applied to the layer sum (1 unless calibrated).
        full_ms: measured latency of the unpruned model.
        group_channels: full width of every channel group the table knows.
        meta: what the measurements are valid for (:data:`STALE_KEYS`) plus how they
            were taken (grid, warmup, repeats, build time, ...).
        calibration: ``{"keep", "layer_sum_ms", "measured_ms"}`` per calibration model.
        path: file the table was loaded from or last saved to, if any.
        built_now: whether this object was measured by :meth:`build` (not loaded).
    """

    def __init__(
        self,
        layers: Sequence[LayerEntry],
        *,
        offset_ms: float,
        full_ms: float,
        group_channels: Mapping[str, int],
        meta: Mapping[str, Any],
        scale: float = 1.0,
        calibration: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.layers: list[LayerEntry] = list(layers)
        self.offset_ms = float(offset_ms)
        self.scale = float(scale)
        self.full_ms = float(full_ms)
        self.group_channels: dict[str, int] = {str(k): int(v) for k, v in group_channels.items()}
        self.meta: dict[str, Any] = dict(meta)
        self.calibration: list[dict[str, Any]] = [dict(c) for c in calibration]
        self.path: Path | None = None
        self.built_now = False
        known = set(self.group_channels)
        for entry in self.layers:
            used = set(entry.in_groups) | ({entry.out_group} if entry.out_group else set())
            if used - known:
                raise ValueError(f"layer {entry.name} refers to unknown groups {used - known}")

    # -- building ---------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        model: nn.Module,
        input_shape: Sequence[int],
        groups: Sequence[ChannelGroup],
        *,
        backend: str = "torch",
        batch_size: int = 1,
        threads: int | None = 1,
        device: str = "cpu",
        grid: int | Sequence[float] = 7,
        min_ratio: float = 0.05,
        warmup: int = 5,
        repeats: int = 20,
        rounds: int = 1,
        statistic: Statistic = "median",
        calibrate: int = 0,
        seed: int = 0,
    ) -> LatencyTable:
        """Measure every layer of ``model`` on a width grid, and the whole model.

        Args:
            model: the unpruned model (not modified; its weights do not matter).
            input_shape: per-sample input shape ``(C, H, W)``.
            groups: its channel groups (:func:`iaprune.pruning.find_groups`).
            backend: latency backend name (see :func:`iaprune.cost.list_backends`).
            batch_size: samples per timed forward pass.
            threads: intra-op threads while timing (``None``: leave as is).
            device: device to time on.
            grid: points per width dimension (spread from ``min_ratio`` to 1), or
                explicit keep-ratios in ``(0, 1]`` (1 is always added).
            min_ratio: smallest ratio of an integer ``grid``.
            warmup: untimed runs before each timed grid point.
            repeats: timed runs per grid point (the median is stored); the whole
                model gets ``max(repeats, 30)``.
            rounds: measure the whole grid this many times, in a shuffled order each
                time, and keep each point's smallest median (robust to a busy machine).
            statistic: ``"median"`` of the timed runs (as ``CostReport.latency_ms``) or
                ``"min"`` (closer to the uncontended latency on a shared machine, where
                long runs are preempted more often than short ones).
            calibrate: number of seeded random pruned models to time and fit
                :attr:`scale` on (0: no calibration, ``scale = 1``).
            seed: seed of the measurement order and of the calibration models.

        Raises:
            IAPruneError: bad settings, unknown or unavailable backend, no layer.
        """
        start = time.perf_counter()
        shape = check_input_shape(input_shape)
        check_timing_args(batch_size=batch_size, threads=threads, warmup=warmup, repeats=repeats)
        if rounds < 1 or calibrate < 0:
            raise IAPruneError("rounds must be >= 1 and calibrate >= 0")
        if statistic not in ("median", "min"):
            raise IAPruneError(f"statistic must be 'median' or 'min', got {statistic!r}")
        groups = list(groups)
        ratios = grid_ratios(grid, min_ratio) if isinstance(grid, int) else [float(r) for r in grid]
        if not ratios or any(not 0 < r <= 1 for r in ratios):
            raise IAPruneError(f"grid ratios must be in (0, 1], got {list(ratios)}")
        timer = get_backend(backend)
        timing = {
            "batch_size": batch_size,
            "threads": threads,
            "warmup": warmup,
            "repeats": repeats,
            "device": device,
        }
        meta = _meta(
            timer, model, shape, groups, batch_size=batch_size, threads=threads, device=device
        )
        sites = _trace(model, shape)
        plans = [_plan(site, groups, ratios) for site in sites]
        jobs = [
            (k, i, j)
            for k, plan in enumerate(plans)
            for i in range(len(plan.in_grid))
            for j in range(len(plan.out_grid))
        ]
        best: dict[tuple[int, int, int], float] = {}
        rng = random.Random(seed)
        # block initialisation must not move the caller's RNG
        with torch.random.fork_rng(devices=[]), _frozen_gc():
            for _ in range(rounds):
                rng.shuffle(jobs)
                for k, i, j in jobs:
                    site, plan = sites[k], plans[k]
                    cin, cout = plan.in_grid[i], plan.out_grid[j]
                    if plan.kind == "depthwise":
                        cin = cout
                    block = _block(site, plan.kind, cin, cout)
                    res = timer.measure(block, _block_input(site, cin), **timing)
                    best[k, i, j] = min(best.get((k, i, j), math.inf), _stat(res, statistic))
            full = timer.measure(model, shape, **{**timing, "repeats": max(repeats, 30)})
            overhead = _call_overhead(timer, model, timing, statistic, max(repeats, 30))
        layers = [
            LayerEntry(
                name=site.name,
                kind=plan.kind,
                ops=_ops(site),
                input_shape=site.input_shape,
                in_full=_in_width(site.module),
                out_full=_out_width(site.module),
                out_group=plan.out_group,
                in_groups=plan.in_groups,
                in_fixed=plan.in_fixed,
                in_mult=plan.in_mult,
                in_grid=plan.in_grid,
                out_grid=plan.out_grid,
                ms=tuple(
                    tuple(max(best[k, i, j] - overhead, 0.0) for j in range(len(plan.out_grid)))
                    for i in range(len(plan.in_grid))
                ),
                calls=site.calls,
            )
            for k, (site, plan) in enumerate(zip(sites, plans, strict=True))
        ]
        meta.update(
            grid=ratios,
            warmup=warmup,
            repeats=repeats,
            rounds=rounds,
            statistic=statistic,
            calibrate=calibrate,
            seed=seed,
            points=len(jobs),
            call_overhead_ms=overhead,
            full_spread_ms=full.spread_ms,
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
        channels = {g.name: g.channels for g in groups}
        table = cls(
            layers,
            offset_ms=0.0,
            full_ms=_stat(full, statistic),
            group_channels=channels,
            meta=meta,
        )
        with _frozen_gc():
            table._fit(model, shape, groups, timer, timing, calibrate, min_ratio, seed, statistic)
        table.meta["build_seconds"] = round(time.perf_counter() - start, 3)
        table.built_now = True
        log.info(
            "latency table: %d layers, %d points, full %.3f ms, offset %.3f ms, scale %.3f",
            len(layers),
            len(jobs),
            table.full_ms,
            table.offset_ms,
            table.scale,
        )
        return table

    def _fit(
        self,
        model: nn.Module,
        shape: tuple[int, ...],
        groups: Sequence[ChannelGroup],
        timer: LatencyBackend,
        timing: Mapping[str, Any],
        calibrate: int,
        min_ratio: float,
        seed: int,
        statistic: Statistic,
    ) -> None:
        """Set :attr:`scale` and :attr:`offset_ms` (line through the full-model point)."""
        full_sum = self.layer_sum({})
        points: list[tuple[float, float]] = []
        if calibrate > 0:
            from iaprune.pruning.spec import PruningSpec
            from iaprune.pruning.surgery import apply_spec

            rng = random.Random(seed + 1)
            example = torch.zeros((1, *shape), device=model_device(model), dtype=model_dtype(model))
            original = {g.name: g.channels for g in groups}
            for _ in range(calibrate):
                keep = {
                    g.name: max(1, round(g.channels * rng.uniform(min_ratio, 1.0))) for g in groups
                }
                pruned = apply_spec(model, example, PruningSpec(keep=keep, original=original))
                measured = _stat(timer.measure(pruned, shape, **timing), statistic)
                layer_sum = self.layer_sum(keep)
                points.append((layer_sum, measured))
                self.calibration.append(
                    {"keep": keep, "layer_sum_ms": layer_sum, "measured_ms": measured}
                )
        dx = [s - full_sum for s, _ in points]
        dy = [m - self.full_ms for _, m in points]
        denom = sum(d * d for d in dx)
        scale = sum(a * b for a, b in zip(dx, dy, strict=True)) / denom if denom > 0 else 1.0
        if not math.isfinite(scale) or not SCALE_BOUNDS[0] <= scale <= SCALE_BOUNDS[1]:
            # a scale this far from 1 means the calibration timings were noise (a busy
            # machine): trusting it can predict negative latencies for small models
            log.warning(
                "latency table calibration gave scale %s (outside %s); using 1", scale, SCALE_BOUNDS
            )
            scale = 1.0
        self.scale = scale
        self.offset_ms = self.full_ms - scale * full_sum

    # -- querying --------------------------------------------------------------------
    def _complete(self, keep: Mapping[str, int] | None) -> dict[str, int]:
        """``keep`` with missing groups at full width; rejects unknown groups/bad counts."""
        full = dict(self.group_channels)
        for name, k in (keep or {}).items():
            if name not in full:
                raise IAPruneError(f"latency table has no channel group {name!r}")
            k = int(k)
            if not 1 <= k <= self.group_channels[name]:
                raise IAPruneError(
                    f"group {name!r}: keep {k} outside 1..{self.group_channels[name]}"
                )
            full[name] = k
        return full

    def widths(self, keep: Mapping[str, int] | None = None) -> dict[str, tuple[int, int]]:
        """``{layer: (in, out)}`` widths of every layer for ``keep`` (missing = full)."""
        full = self._complete(keep)
        return {e.name: e.widths(full) for e in self.layers}

    def layer_sum(self, keep: Mapping[str, int] | None = None) -> float:
        """Unscaled sum of the interpolated layer latencies (ms) for ``keep``."""
        full = self._complete(keep)
        return sum(e.latency(full) for e in self.layers)

    def entries_for(self, keep: Mapping[str, int] | None = None) -> dict[str, float]:
        """``{layer: ms}``: each layer's interpolated latency times :attr:`scale`.

        ``predict(keep) == sum(entries_for(keep).values()) + offset_ms``.
        """
        full = self._complete(keep)
        return {e.name: self.scale * e.latency(full) for e in self.layers}

    def predict(self, keep: Mapping[str, int] | None = None) -> float:
        """Predicted latency (ms per batch) when group ``g`` keeps ``keep[g]`` filters.

        Groups missing from ``keep`` stay at full width, so ``predict({})`` is the
        unpruned model's measured latency. Takes microseconds.

        Raises:
            IAPruneError: an unknown group or a keep count outside ``1..channels``.
        """
        return sum(self.entries_for(keep).values()) + self.offset_ms

    @property
    def points(self) -> int:
        """Number of measured layer grid points."""
        return sum(e.points for e in self.layers)

    def latency_env(self) -> dict[str, object]:
        """A ``CostReport.latency_env`` for predictions: the table's settings, ``predicted``."""
        keys = ("backend", "backend_version", "threads", "device", "batch_size", "input_shape")
        env: dict[str, object] = {k: self.meta.get(k) for k in keys}
        env["version"] = env.pop("backend_version")
        env.update(
            predicted=True,
            table=None if self.path is None else str(self.path),
            table_fingerprint=self.meta.get("fingerprint"),
        )
        return env

    def stale_reasons(self, meta: Mapping[str, Any]) -> list[str]:
        """:data:`STALE_KEYS` whose values differ between this table's meta and ``meta``."""
        return [k for k in STALE_KEYS if self.meta.get(k) != meta.get(k)]

    # -- files -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; inverse of :meth:`from_dict`."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "meta": self.meta,
            "full_ms": self.full_ms,
            "offset_ms": self.offset_ms,
            "scale": self.scale,
            "group_channels": self.group_channels,
            "calibration": self.calibration,
            "layers": [e.to_dict() for e in self.layers],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyTable:
        """Rebuild a table from :meth:`to_dict` output.

        Raises:
            IAPruneError: not a latency table, another format version, or malformed.
        """
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise IAPruneError("not an iaprune latency table")
        if data.get("format_version") != FORMAT_VERSION:
            raise IAPruneError(
                f"latency table format {data.get('format_version')!r}, expected {FORMAT_VERSION}"
            )
        try:
            return cls(
                [LayerEntry.from_dict(e) for e in data["layers"]],
                offset_ms=float(data["offset_ms"]),
                full_ms=float(data["full_ms"]),
                group_channels=dict(data["group_channels"]),
                meta=dict(data["meta"]),
                scale=float(data.get("scale", 1.0)),
                calibration=list(data.get("calibration") or []),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IAPruneError(f"malformed latency table: {exc}") from exc

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON (atomically; parent folders are created).

        Raises:
            IAPruneError: ``path`` exists and is not a regular file (a device, fifo or
                directory is never replaced), or cannot be written.
        """
        target = Path(path).expanduser()

        def dump(fh: IO[str]) -> None:
            json.dump(self.to_dict(), fh, indent=1)
            fh.write("\n")

        write_atomic(target, dump, what="latency table")
        self.path = target
        return target

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """Read a table written by :meth:`save`.

        Raises:
            IAPruneError: missing, unreadable or malformed file.
        """
        source = Path(path).expanduser()
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IAPruneError(f"latency table {source} does not exist") from None
        except (OSError, ValueError) as exc:
            raise IAPruneError(f"cannot read latency table {source}: {exc}") from exc
        table = cls.from_dict(data)
        table.path = source
        return table

    def __repr__(self) -> str:
        return (
            f"LatencyTable({len(self.layers)} layers, {self.points} points, "
            f"full={self.full_ms:.3f} ms, offset={self.offset_ms:.3f} ms, scale={self.scale:.3f}, "
            f"backend={self.meta.get('backend')!r}, batch={self.meta.get('batch_size')})"
        )


_META_SETTINGS = ("backend", "batch_size", "threads", "device")


def load_or_build(
    path: str | Path,
    model: nn.Module,
    input_shape: Sequence[int],
    groups: Sequence[ChannelGroup],
    **settings: Any,
) -> LatencyTable:
    """The table stored at ``path`` if it is valid for these settings, else a new one.

    A stored table whose :data:`STALE_KEYS` meta (backend and its version, torch
    version, device, CPU, threads, batch size, input shape, dtype, architecture or
    groups fingerprint) differs from what :meth:`LatencyTable.build` would record now
    is never used: a :class:`LatencyTableWarning` says why, the table is rebuilt and
    saved over it. A file at ``path`` that is not a readable latency table, or not a
    regular file, is never overwritten (:class:`IAPruneError`).

    Args:
        path: table file.
        model, input_shape, groups: as for :meth:`LatencyTable.build`.
        **settings: keyword arguments of :meth:`LatencyTable.build`.
    """
    target = Path(path).expanduser()
    shape = check_input_shape(input_shape)
    unknown = set(settings) - {
        "backend",
        "batch_size",
        "threads",
        "device",
        "grid",
        "min_ratio",
        "warmup",
        "repeats",
        "rounds",
        "statistic",
        "calibrate",
        "seed",
    }
    if unknown:
        raise TypeError(f"unknown latency table settings: {sorted(unknown)}")
    check_output_file(target, what="latency table")
    if target.exists():
        want = expected_meta(
            model, shape, groups, **{k: settings[k] for k in _META_SETTINGS if k in settings}
        )
        try:
            table = LatencyTable.load(target)
        except IAPruneError as exc:
            raise IAPruneError(
                f"{exc}; not overwriting it: remove it or name another table file"
            ) from exc
        stale = table.stale_reasons(want)
        if not stale:
            log.info("latency table %s reused", target)
            return table
        warnings.warn(
            f"latency table {target} was measured for {_describe(table.meta, stale)}; "
            f"now {_describe(want, stale)}; rebuilding",
            LatencyTableWarning,
            stacklevel=2,
        )
    table = LatencyTable.build(model, shape, groups, **settings)
    table.save(target)
    return table


def predicted_cost(table: LatencyTable, input_shape: Sequence[int]) -> PredictedCost:
    """A search cost function: static costs measured, latency predicted by ``table``.

    The returned ``cost(model, keep)`` is :func:`iaprune.cost.measure_cost` (MACs,
    params, activation memory of ``model``) with ``latency_ms = table.predict(keep)``
    (``keep=None``: the unpruned model), ``latency_spread_ms = None`` and
    ``latency_env = table.latency_env()`` (``"predicted": True``).

    Raises:
        IAPruneError: ``input_shape`` is not the shape the table was measured for.
    """
    shape = check_input_shape(input_shape)
    if list(shape) != list(table.meta.get("input_shape", [])):
        raise IAPruneError(
            f"latency table was measured for input shape {table.meta.get('input_shape')}, "
            f"not {list(shape)}"
        )

    def cost(model: nn.Module, keep: Mapping[str, int] | None) -> CostReport:
        static = measure_cost(model, shape)
        return replace(
            static,
            latency_ms=table.predict(keep),
            latency_spread_ms=None,
            latency_env=table.latency_env(),
        )

    return cost
