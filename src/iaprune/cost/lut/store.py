"""Where latency tables live and when a stored one is reused.

**Where a table is written.** iaprune writes only where the user said. A table goes to
the explicit path (``--output`` / ``--latency-table``); without one, to the shared table
directory ``$IAPRUNE_LUT_DIR`` when the user has set it (:func:`default_table_path`:
``$IAPRUNE_LUT_DIR/<name>.json`` with ``<name>`` =
``<architecture fingerprint>-<backend>-<CxHxW>-b<batch>-t<threads>-<device>``, plus
``-m<multiple>`` for a channel step other than the backend's preferred one), the same
name for ``iaprune latency-table`` and ``iaprune prune --latency predicted`` so a table
built by the one is found by the other; without either, ``iaprune prune`` keeps its table
in the run directory (``RUN_DIR/latency_table.json``) and ``iaprune latency-table`` asks
for ``--output``. The name only keeps tables of different settings apart;
:func:`load_or_build` still checks a stored table's meta.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from iaprune.cost._util import check_input_shape
from iaprune.cost.latency import default_round_to
from iaprune.cost.lut.meta import architecture_fingerprint, describe, expected_meta
from iaprune.cost.lut.table import TABLE_TIMING, LatencyTable
from iaprune.errors import IAPruneError
from iaprune.fileio import check_output_file
from iaprune.timing import TimingSettings, resolve_timing

if TYPE_CHECKING:
    from iaprune.pruning.groups import ChannelGroup

__all__ = [
    "LUT_DIR_ENV",
    "LatencyTableWarning",
    "default_table_path",
    "load_or_build",
    "table_dir",
]

log = logging.getLogger(__name__)

LUT_DIR_ENV = "IAPRUNE_LUT_DIR"
"""Environment variable that replaces the directory of :func:`default_table_path`."""

_BUILD_OPTIONS = frozenset(
    {
        "grid",
        "min_ratio",
        "rounds",
        "statistic",
        "calibrate",
        "seed",
        "method",
        "samples",
        "multiple",
    }
)
_TIMING_OPTIONS = frozenset({"backend", "batch_size", "threads", "device", "warmup", "repeats"})


class LatencyTableWarning(UserWarning):
    """A stored latency table was unusable (stale or unreadable) and is being rebuilt."""


def table_dir() -> Path | None:
    """The shared table directory ``$IAPRUNE_LUT_DIR``; None when the user set none."""
    base = os.environ.get(LUT_DIR_ENV)
    return Path(base).expanduser() if base else None


def default_table_path(
    model: nn.Module,
    input_shape: Sequence[int],
    timing: TimingSettings | None = None,
    *,
    multiple: int | None = None,
    **overrides: Any,
) -> Path | None:
    """The shared table file for ``model`` measured with ``timing``; None without a shared dir.

    ``$IAPRUNE_LUT_DIR/<fingerprint>-<backend>-<shape>-b<batch>-t<threads>-<device>.json``
    (see the module docstring), with ``-m<multiple>`` before ``.json`` when ``multiple``
    (the table's channel step) is not the backend's preferred multiple. ``overrides`` are
    individual timing fields (``backend=``, ``batch_size=``, ``threads=``, ``device=``);
    warm-up and repeats do not enter the name.
    """
    settings = resolve_timing(timing or TABLE_TIMING, **overrides)
    shape = "x".join(str(d) for d in check_input_shape(input_shape))
    tag = "auto" if settings.threads is None else str(settings.threads)
    dev = settings.device.replace(":", "")
    fingerprint = architecture_fingerprint(model)
    step = "" if multiple in (None, default_round_to(settings.backend)) else f"-m{multiple}"
    name = f"{fingerprint}-{settings.backend}-{shape}-b{settings.batch_size}-t{tag}-{dev}{step}"
    name += ".json"
    folder = table_dir()
    return None if folder is None else folder / name


def load_or_build(
    path: str | Path | None,
    model: nn.Module,
    input_shape: Sequence[int],
    groups: Sequence[ChannelGroup],
    timing: TimingSettings | None = None,
    *,
    writable: bool = True,
    keep_step: bool = False,
    **settings: Any,
) -> LatencyTable:
    """The table stored at ``path`` if it is valid for these settings, else a new one.

    A stored table whose :data:`~iaprune.cost.lut.STALE_KEYS` meta (backend and its
    version, torch version, device, CPU, threads, batch size, input shape, dtype,
    architecture or groups fingerprint) or channel step (``multiple``, default the
    backend's preferred one) differs from what :meth:`LatencyTable.build` would record
    now is never used: a :class:`LatencyTableWarning` says why, the table
    is rebuilt and saved over it. A file at ``path`` that is not a readable latency
    table, or not a regular file, is never overwritten (:class:`IAPruneError`).

    Args:
        path: table file; ``None``: :func:`default_table_path` for these settings (an
            error when ``$IAPRUNE_LUT_DIR`` is not set).
        model: as for :meth:`LatencyTable.build`.
        input_shape: as for :meth:`LatencyTable.build`.
        groups: as for :meth:`LatencyTable.build`.
        timing: as for :meth:`LatencyTable.build`.
        writable: False for a path read from a run directory: a missing or stale table
            is then an error instead of a new file there.
        keep_step: a stored table on another channel step is reused (a resumed run
            keeps the table its earlier trials were priced with); a missing or
            otherwise stale one is still built on ``multiple``.
        **settings: the other keyword arguments of :meth:`LatencyTable.build` (grid,
            calibration, ...) and individual timing fields.
    """
    unknown = set(settings) - _BUILD_OPTIONS - _TIMING_OPTIONS
    if unknown:
        raise TypeError(f"unknown latency table settings: {sorted(unknown)}")
    overrides = {k: v for k, v in settings.items() if k in _TIMING_OPTIONS}
    options = {k: v for k, v in settings.items() if k in _BUILD_OPTIONS}
    full = resolve_timing(timing or TABLE_TIMING, **overrides)
    shape = check_input_shape(input_shape)
    step = options.get("multiple") or default_round_to(full.backend)
    if path is None:
        target = default_table_path(model, shape, full, multiple=step)
    else:
        target = Path(path).expanduser()
    if target is None:
        raise IAPruneError(f"name a latency table file (or set {LUT_DIR_ENV} to share tables)")
    check_output_file(target, what="latency table")
    if target.exists():
        want = {**expected_meta(model, shape, groups, full), "multiple": step}
        try:
            table = LatencyTable.load(target)
        except IAPruneError as exc:
            raise IAPruneError(
                f"{exc}; not overwriting it: remove it or name another table file"
            ) from exc
        stale = table.stale_reasons(want)
        if table.meta.get("multiple") != step:  # tables before the step was recorded: stale
            if not keep_step:
                stale.append("multiple")
            elif not stale:
                log.info(
                    "latency table %s is on channel step %s, not %d: kept for the resumed run",
                    target,
                    table.meta.get("multiple"),
                    step,
                )
        if not stale:
            log.info("latency table %s reused", target)
            return table
        warnings.warn(
            f"latency table {target} was measured for {describe(table.meta, stale)}; "
            f"now {describe(want, stale)}; rebuilding",
            LatencyTableWarning,
            stacklevel=2,
        )
    if not writable:
        state = "stale" if target.exists() else "missing"
        raise IAPruneError(
            f"latency table {target} (from the run's config.json) is {state}; a resumed run "
            f"builds it there only when told: pass --latency-table {target}"
        )
    table = LatencyTable.build(model, shape, groups, full, **options)
    table.save(target)
    return table
