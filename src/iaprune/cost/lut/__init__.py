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
  width, interior points rounded to multiples of the table's channel step (the search's
  ``--round-to``, by default the backend's preferred multiple), the full width always
  included.
* **Inside the model, where the runtime can tell.** Stand-alone blocks pay a session
  call, input copies and layout reorders that the fused graph does not. With a backend
  that has a per-node profiler (ONNX Runtime's ``enable_profiling``) the default
  (``method="auto"``) times the layers inside seeded random pruned *whole* models
  instead and attributes every executed node to its layer
  (:mod:`~iaprune.cost.lut.profile`); grid points are then multiples of the table's
  channel step (the widths the search proposes). Runtimes are not linear between
  multiples of their vector width (ONNX Runtime runs unaligned widths on slower kernels),
  so a table predicts well the widths on its step and interpolates between its grid
  points. ``benchmarks/lut_error.py`` measures both methods.
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
  timed whole, interleaved with the unpruned model (:func:`iaprune.cost.compare_latency`,
  so a machine that got busier since the grid was timed does not bend the fit). With
  fewer than 4 of them ``scale`` is fitted on the line through the full-model point; with
  4 or more the correction ``scale * layer sum + ms_per_gmac * GMACs + offset`` is fitted
  freely (non-negative least squares on relative errors, :mod:`~iaprune.cost.lut.fit`).
  The MACs term carries what stand-alone layer timings get wrong in proportion to the
  work (ONNX Runtime adds layout reorders and a session call to every stand-alone block;
  its fused graph runs the same layers faster). The leave-one-out error of the fit is
  stored (:meth:`LatencyTable.fit_error`); :meth:`LatencyTable.reliable` says whether it
  is within :data:`ERROR_BOUNDS` (5 % median, 15 % max), and the pipeline measures every
  trial instead of searching on a table that is not.

Tables are JSON files. :meth:`LatencyTable.meta` records what the measurements are
valid for: backend and its version, torch version, device and CPU, threads, batch
size, input shape, dtype, fingerprints of the architecture and of the channel
groups, and the channel step. :func:`load_or_build` rebuilds (with a
:class:`LatencyTableWarning`) a table whose meta does not match the current settings
instead of silently using it; a resumed run keeps a table on another step, the one its
earlier trials were priced with.
Tables live at :func:`default_table_path` unless a path is given: the same default for
``iaprune latency-table`` and ``iaprune prune --latency predicted``.

Modules, one purpose each (data flows top to bottom):

* :mod:`~iaprune.cost.lut.trace`: the layers of one forward pass, with fused BN/activation;
* :mod:`~iaprune.cost.lut.plan`: how each layer's widths follow the groups, its grid, and
  the stand-alone block timed at a grid point;
* :mod:`~iaprune.cost.lut.timing`: timing the grid, the whole model and the call overhead;
* :mod:`~iaprune.cost.lut.profile`: the grid from per-node profiles of whole models;
* :mod:`~iaprune.cost.lut.fit`: calibration and the ``scale``/``offset`` line;
* :mod:`~iaprune.cost.lut.grid` and :mod:`~iaprune.cost.lut.entry`: width grids,
  interpolation and one layer's row;
* :mod:`~iaprune.cost.lut.meta`: file format, fingerprints, staleness;
* :mod:`~iaprune.cost.lut.table`: :class:`LatencyTable` (build, predict, JSON);
* :mod:`~iaprune.cost.lut.store`: the default table path and :func:`load_or_build`;
* :mod:`~iaprune.cost.lut.predicted`: the ``"predicted"`` cost model.
"""

from __future__ import annotations

from iaprune.cost.lut.entry import LayerEntry, LayerKind
from iaprune.cost.lut.fit import CALIBRATION_DRAW, SCALE_BOUNDS, aligned, calibration_keeps
from iaprune.cost.lut.grid import channel_grid, grid_ratios
from iaprune.cost.lut.meta import (
    FORMAT,
    FORMAT_VERSION,
    STALE_KEYS,
    architecture_fingerprint,
    expected_meta,
    groups_fingerprint,
)
from iaprune.cost.lut.predicted import PredictedCostModel, predicted_cost
from iaprune.cost.lut.store import (
    LUT_DIR_ENV,
    LatencyTableWarning,
    default_table_path,
    load_or_build,
    table_dir,
)
from iaprune.cost.lut.table import ERROR_BOUNDS, TABLE_TIMING, LatencyTable
from iaprune.cost.lut.timing import Statistic

__all__ = [
    "CALIBRATION_DRAW",
    "ERROR_BOUNDS",
    "FORMAT",
    "FORMAT_VERSION",
    "LUT_DIR_ENV",
    "SCALE_BOUNDS",
    "STALE_KEYS",
    "TABLE_TIMING",
    "LatencyTable",
    "LatencyTableWarning",
    "LayerEntry",
    "LayerKind",
    "PredictedCostModel",
    "Statistic",
    "aligned",
    "architecture_fingerprint",
    "calibration_keeps",
    "channel_grid",
    "default_table_path",
    "expected_meta",
    "grid_ratios",
    "groups_fingerprint",
    "load_or_build",
    "predicted_cost",
    "table_dir",
]
