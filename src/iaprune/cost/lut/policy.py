"""When a run's search may price its candidates with a latency table.

A run's table (:func:`run_table`) is the one at ``--latency-table``, else the shared one
at :func:`~iaprune.cost.lut.default_table_path` when ``$IAPRUNE_LUT_DIR`` is set (where
``iaprune latency-table`` writes), else the run directory's ``latency_table.json``; it is
built with :data:`TABLE_CALIBRATE` calibration models so its error on unseen models is
known. :func:`search_cost` decides, and logs why, whether the candidates are priced by
the table or measured: a table whose leave-one-out error misses
:data:`~iaprune.cost.lut.ERROR_BOUNDS` is not searched on, unless the candidates are
projected onto a latency budget through it (the chosen model is then measured and
re-projected, :func:`iaprune.search.fit_measured`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from iaprune.cost._base import CostModel, create_cost_model
from iaprune.cost.lut.store import default_table_path, load_or_build
from iaprune.cost.lut.table import ERROR_BOUNDS, TABLE_TIMING, LatencyTable

if TYPE_CHECKING:
    from iaprune.config import CostConfig
    from iaprune.pruning.groups import ChannelGroup

log = logging.getLogger(__name__)

TABLE_CALIBRATE = 8
"""Whole pruned models timed to fit and check a latency table's correction (``--latency
predicted``); a table whose leave-one-out error misses the bounds is not searched on."""


def run_table(
    model: nn.Module,
    input_shape: Sequence[int],
    groups: Sequence[ChannelGroup],
    config: CostConfig,
    *,
    fallback: Path,
    writable: bool,
    multiple: int | None = None,
    keep_step: bool = False,
) -> LatencyTable:
    """The latency table of ``model`` for a run: reused when valid, else built (logged).

    ``fallback``: the run directory's table path, used when ``config.table`` is not set
    and there is no shared table directory. ``writable`` False: a missing or stale table
    at ``config.table`` is an error, not rebuilt there (a path read from a run directory).
    ``multiple``: the run's channel step (``--round-to``), the step of the table's grid
    and calibration models (default: the backend's preferred multiple); ``keep_step``: a
    resumed run keeps a stored table on another step (:func:`load_or_build`).
    """
    per_point = config.timing.with_(warmup=TABLE_TIMING.warmup, repeats=TABLE_TIMING.repeats)
    shared = default_table_path(model, input_shape, per_point, multiple=multiple)
    if keep_step and shared is not None and not shared.exists():
        # a run started before tables had a step in their name used the plain one
        plain = default_table_path(model, input_shape, per_point)
        shared = plain if plain is not None and plain.exists() else shared
    path = config.table or shared or fallback
    start = time.perf_counter()
    table = load_or_build(
        path,
        model,
        input_shape,
        groups,
        per_point,
        writable=writable or config.table is None,
        calibrate=TABLE_CALIBRATE,
        multiple=multiple,
        keep_step=keep_step,
    )
    log.info(
        "latency table %s (%s, batch %d, channel step %s): ready in %.1f s",
        table.path,
        config.backend,
        config.batch_size,
        table.meta.get("multiple"),
        time.perf_counter() - start,
    )
    return table


def search_cost(table: LatencyTable, config: CostConfig, *, projected: bool) -> CostModel:
    """The search's cost model given a run's ``table``: predicted by it, or measured.

    ``projected``: the candidates are projected onto a latency budget through the table,
    so it prices them whatever its error. Otherwise a table whose leave-one-out error
    misses :data:`ERROR_BOUNDS` is not searched on: every trial is measured. A table
    without calibration models is used, with a warning that its error is unknown.
    """
    error = table.fit_error()
    if not error:
        log.warning(
            "latency table %s was built without calibration models: its error on unseen "
            "models is unknown (rebuild it with --calibrate %d)",
            table.path,
            TABLE_CALIBRATE,
        )
    elif not table.reliable():
        then = "measuring every trial instead"
        if projected:
            then = "the chosen model is measured and re-projected"
        log.warning(
            "latency table %s predicts unseen models with %.1f %% median / %.1f %% max "
            "error (leave-one-out), worse than %g %% / %g %%: %s",
            table.path,
            error["median_pct"],
            error["max_pct"],
            *ERROR_BOUNDS,
            then,
        )
        if not projected:
            return create_cost_model("measured", config)
    return create_cost_model("predicted", table)
