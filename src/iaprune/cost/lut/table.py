"""The latency lookup table: build (measure), query (predict) and its JSON form.

See :mod:`iaprune.cost.lut` for what is measured and how predictions are made; this
module holds the table's data and its fitted correction; the grid is measured by
:mod:`~iaprune.cost.lut.build`. Files are written with :meth:`LatencyTable.save` and found or
rebuilt by :func:`iaprune.cost.lut.load_or_build`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from torch import nn

from iaprune.cost.latency import LatencyBackend
from iaprune.cost.lut.build import Method, measure_layers
from iaprune.cost.lut.entry import LayerEntry
from iaprune.cost.lut.fit import (
    CALIBRATION_DRAW,
    MIN_FREE_FIT,
    Timer,
    calibration_keeps,
    fit_correction,
    fit_scale,
    loo_errors,
    prune_to,
    summarize_errors,
)
from iaprune.cost.lut.meta import FORMAT, FORMAT_VERSION, STALE_KEYS
from iaprune.cost.lut.profile import DEFAULT_SAMPLES
from iaprune.cost.lut.timing import Statistic, frozen_gc, statistic_of
from iaprune.errors import IAPruneError
from iaprune.fileio import write_atomic
from iaprune.timing import TimingSettings

if TYPE_CHECKING:
    from iaprune.pruning.groups import ChannelGroup

__all__ = ["ERROR_BOUNDS", "TABLE_TIMING", "LatencyTable"]

ERROR_BOUNDS = (5.0, 15.0)
"""Median and maximum leave-one-out error (%) a table must reach to be searched on."""

log = logging.getLogger(__name__)

MIN_PREDICTION = 0.01
"""The smallest prediction, as a fraction of the unpruned model's latency (see ``predict``)."""

TABLE_TIMING = TimingSettings(repeats=20)
"""Default timing of one grid point: the :class:`~iaprune.timing.TimingSettings` defaults
with 20 timed runs (the whole model gets at least 30)."""


class LatencyTable:
    """Per-layer latency lookup table of one model for one runtime configuration.

    Build with :meth:`build` (measures) or :func:`load_or_build` (reuses a valid
    stored table); query with :meth:`predict`. Latencies are per batch of
    ``meta["batch_size"]`` samples, in milliseconds, like ``CostReport.latency_ms``.

    Attributes:
        layers: one :class:`LayerEntry` per layer, in execution order.
        offset_ms: constant part of every prediction (see the module docstring).
        scale: factor applied to the layer sum (1 unless calibrated).
        ms_per_gmac: milliseconds per 10^9 MACs (one sample) added to the prediction
            (0 unless calibrated with enough models; see :mod:`~iaprune.cost.lut.fit`).
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
        ms_per_gmac: float = 0.0,
    ) -> None:
        self.layers: list[LayerEntry] = list(layers)
        self.offset_ms = float(offset_ms)
        self.scale = float(scale)
        self.ms_per_gmac = float(ms_per_gmac)
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
        timing: TimingSettings | None = None,
        *,
        grid: int | Sequence[float] = 7,
        min_ratio: float = 0.05,
        rounds: int = 1,
        statistic: Statistic = "median",
        calibrate: int = 0,
        seed: int = 0,
        method: Method = "auto",
        samples: int = DEFAULT_SAMPLES,
        multiple: int | None = None,
        **overrides: Any,
    ) -> LatencyTable:
        """Measure every layer of ``model`` on a width grid, and the whole model.

        Args:
            model: the unpruned model (not modified; its weights do not matter).
            input_shape: per-sample input shape ``(C, H, W)``.
            groups: its channel groups (:func:`iaprune.pruning.find_groups`).
            timing: backend, batch size, threads, device, warm-up and repeats of each
                grid point (default :data:`TABLE_TIMING`); the statistic of the
                ``repeats`` runs is stored, the whole model gets ``max(repeats, 30)``.
            grid: points per width dimension (spread from ``min_ratio`` to 1), or
                explicit keep-ratios in ``(0, 1]`` (1 is always added).
            min_ratio: smallest ratio of an integer ``grid``.
            rounds: measure the whole grid this many times, in a shuffled order each
                time, and keep each point's smallest statistic (robust to a busy machine).
            statistic: ``"median"`` of the timed runs (as ``CostReport.latency_ms``) or
                ``"min"`` (closer to the uncontended latency on a shared machine, where
                long runs are preempted more often than short ones).
            calibrate: number of seeded random pruned models to time and fit
                :attr:`scale` on (0: no calibration, ``scale = 1``).
            seed: seed of the measurement order and of the calibration models.
            method: ``"profile"``: time each layer inside ``samples`` random whole
                models with the backend's per-node profiler
                (:mod:`~iaprune.cost.lut.profile`); ``"standalone"``: time each layer
                as a block of its own at every grid point; ``"auto"``: profile when the
                backend can (ONNX Runtime), else stand-alone. A profile whose nodes do
                not match the layers falls back to stand-alone blocks.
            samples: random whole models profiled by ``"profile"``.
            multiple: channel step of the grid and of the calibration models: the
                search's ``--round-to`` (default: the backend's preferred multiple).
                Runtimes are not linear between multiples of their vector width (ONNX
                Runtime, resnet56 at batch 32: 18 of 24 channels in the last stage
                cost 0.45 of the model, 16 cost 0.31, 24 cost 0.48), so a table
                predicts well only the widths on its step; a new run uses only a table
                on its own step (:func:`~iaprune.cost.lut.load_or_build`).
            **overrides: individual timing fields (``backend=``, ``batch_size=``,
                ``threads=``, ``device=``, ``warmup=``, ``repeats=``) replacing those
                of ``timing``.

        Raises:
            IAPruneError: bad settings, unknown or unavailable backend, no layer.
        """
        start = time.perf_counter()
        m = measure_layers(
            model,
            input_shape,
            groups,
            timing or TABLE_TIMING,
            grid=grid,
            min_ratio=min_ratio,
            rounds=rounds,
            statistic=statistic,
            calibrate=calibrate,
            seed=seed,
            method=method,
            samples=samples,
            multiple=multiple,
            **overrides,
        )
        table = cls(
            m.layers,
            offset_ms=0.0,
            full_ms=m.full_ms,
            group_channels={g.name: g.channels for g in groups},
            meta=m.meta,
        )
        with frozen_gc():
            table.fit(
                model, m.shape, groups, m.timer, m.settings, calibrate, min_ratio, seed, statistic
            )
        table.meta["build_seconds"] = round(time.perf_counter() - start, 3)
        table.built_now = True
        log.info(
            "latency table: %d layers, %d points, full %.3f ms, offset %.3f ms, scale %.3f",
            len(m.layers),
            m.points,
            table.full_ms,
            table.offset_ms,
            table.scale,
        )
        return table

    def fit(
        self,
        model: nn.Module,
        shape: tuple[int, ...],
        groups: Sequence[ChannelGroup],
        timer: Timer,
        timing: TimingSettings,
        calibrate: int,
        min_ratio: float,
        seed: int,
        statistic: Statistic,
    ) -> None:
        """Time ``calibrate`` seeded random pruned models and fit the correction on them.

        With a real latency backend the calibration models are timed *interleaved* with
        the unpruned model (:func:`~iaprune.cost.compare_latency`): each is recorded as
        its measured latency ratio times :attr:`full_ms`, so a machine that is busier
        now than while the grid was timed does not bend the fit. Any other ``timer``
        (tests) times each model on its own. The models are appended to
        :attr:`calibration`; :meth:`refit` fits the correction (a line through the
        full-model point with few models, see :mod:`~iaprune.cost.lut.fit`).
        """
        full_sum = self.layer_sum({})
        multiple = int(self.meta.get("multiple", 1))
        keeps = calibration_keeps(groups, calibrate, min_ratio, seed, multiple)
        if keeps:
            self.meta["calibration_draw"] = CALIBRATION_DRAW
        pruned = [prune_to(model, shape, groups, keep) for keep in keeps]
        if isinstance(timer, LatencyBackend) and pruned:
            from iaprune.cost.compare import CompareSettings, compare_latency

            models = {"full": model, **{f"c{i}": m for i, m in enumerate(pruned)}}
            settings = CompareSettings(
                block=3, statistic=statistic, min_rounds=4, max_rounds=12, target=0.02
            )
            cmp = compare_latency(models, shape, timing, settings, backend=timer)
            measured = [cmp.ratios[f"c{i}"].value * self.full_ms for i in range(len(keeps))]
        else:
            measured = [statistic_of(timer.measure(m, shape, timing), statistic) for m in pruned]
        points: list[tuple[float, float]] = []
        for keep, ms in zip(keeps, measured, strict=True):
            layer_sum = self.layer_sum(keep)
            points.append((layer_sum, ms))
            self.calibration.append({"keep": keep, "layer_sum_ms": layer_sum, "measured_ms": ms})
        self.refit()
        if len(points) + 1 < MIN_FREE_FIT:
            self.scale = fit_scale(points, full_sum, self.full_ms)
            self.offset_ms = self.full_ms - self.scale * full_sum

    def refit(self) -> None:
        """Fit the correction on the full model and :attr:`calibration` (no timing).

        With fewer than :data:`~iaprune.cost.lut.fit.MIN_FREE_FIT` points (or a table
        without MACs per layer) the line goes through the full-model point with scale 1;
        otherwise :func:`~iaprune.cost.lut.fit.fit_correction` sets :attr:`scale`,
        :attr:`ms_per_gmac` and :attr:`offset_ms`, and ``meta["fit_error"]`` records the
        leave-one-out errors (:meth:`fit_error`).
        """
        rows = [(self.layer_sum({}), self.gmacs({}), self.full_ms)] + [
            (float(c["layer_sum_ms"]), self.gmacs(c["keep"]), float(c["measured_ms"]))
            for c in self.calibration
        ]
        has_macs = all(e.macs_full > 0 for e in self.layers)
        if len(rows) < MIN_FREE_FIT or not has_macs:
            self.scale, self.ms_per_gmac = 1.0, 0.0
            self.offset_ms = self.full_ms - rows[0][0]
            self.meta.pop("fit_error", None)
            return
        fit = fit_correction(rows)
        self.scale, self.ms_per_gmac, self.offset_ms = fit.scale, fit.ms_per_gmac, fit.offset_ms
        self.meta["fit_error"] = summarize_errors(loo_errors(rows))

    def fit_error(self) -> dict[str, float]:
        """Leave-one-out error of the fitted correction: ``{"median_pct", "max_pct", "n"}``.

        Empty when the table was not calibrated with enough models to estimate it.
        """
        return dict(self.meta.get("fit_error") or {})

    def reliable(self, bounds: tuple[float, float] = ERROR_BOUNDS) -> bool:
        """Whether the leave-one-out error is within ``(median %, max %)`` bounds.

        ``False`` when the error is unknown (no or too little calibration): a table
        that cannot show it predicts well should not be searched on alone.
        """
        err = self.fit_error()
        return bool(err) and err["median_pct"] <= bounds[0] and err["max_pct"] <= bounds[1]

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

    def gmacs(self, keep: Mapping[str, int] | None = None) -> float:
        """Conv/linear MACs of one sample for ``keep``, in units of 10^9."""
        full = self._complete(keep)
        return sum(e.macs(full) for e in self.layers) / 1e9

    def entries_for(self, keep: Mapping[str, int] | None = None) -> dict[str, float]:
        """``{layer: ms}``: each layer's interpolated latency times :attr:`scale`.

        ``predict(keep) == sum(entries_for(keep).values()) + offset_ms`` (above the floor
        :data:`MIN_PREDICTION`): the MACs term of a calibrated table is shared out by each
        layer's MACs.
        """
        full = self._complete(keep)
        return {
            e.name: self.scale * e.latency(full) + self.ms_per_gmac * e.macs(full) / 1e9
            for e in self.layers
        }

    def predict(self, keep: Mapping[str, int] | None = None) -> float:
        """Predicted latency (ms per batch) when group ``g`` keeps ``keep[g]`` filters.

        Groups missing from ``keep`` stay at full width, so ``predict({})`` is the
        unpruned model's measured latency. Never below :data:`MIN_PREDICTION` of it: a
        negative offset fitted on noisy timings of a very fast model could otherwise
        predict zero or less for a small candidate. Takes microseconds.

        Raises:
            IAPruneError: an unknown group or a keep count outside ``1..channels``.
        """
        total = sum(self.entries_for(keep).values()) + self.offset_ms
        return max(total, MIN_PREDICTION * self.full_ms)

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
            "ms_per_gmac": self.ms_per_gmac,
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
                ms_per_gmac=float(data.get("ms_per_gmac", 0.0)),
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
            f"ms_per_gmac={self.ms_per_gmac:.3f}, "
            f"backend={self.meta.get('backend')!r}, batch={self.meta.get('batch_size')})"
        )
