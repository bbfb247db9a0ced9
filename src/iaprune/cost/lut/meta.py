"""What a latency table is valid for: file format, fingerprints and the staleness meta.

A table records, in its ``meta``, the backend and its version, torch version, device and
CPU/GPU name, threads, batch size, input shape, dtype and fingerprints of the
architecture and of the channel groups (:data:`STALE_KEYS`); a stored table whose meta
differs from :func:`expected_meta` for the current settings is rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from iaprune.cost._util import check_input_shape
from iaprune.cost.latency import LatencyBackend, get_backend
from iaprune.devices import device_name
from iaprune.inference import model_dtype
from iaprune.timing import TimingSettings, resolve_timing

if TYPE_CHECKING:
    from iaprune.pruning.groups import ChannelGroup

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "STALE_KEYS",
    "architecture_fingerprint",
    "describe",
    "expected_meta",
    "groups_fingerprint",
    "table_meta",
]

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


def expected_meta(
    model: nn.Module,
    input_shape: Sequence[int],
    groups: Sequence[ChannelGroup],
    timing: TimingSettings | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """The :data:`STALE_KEYS` meta a table measured now with these settings would have.

    ``timing`` (and the individual ``overrides``: ``backend=``, ``batch_size=``,
    ``threads=``, ``device=``) are the table's timing settings; warm-up and repeats do not
    enter the meta. The backend's version, normalised device and effective thread count
    come from one untimed probe run of a 1x1 conv, so any backend reports them the same
    way it does when measuring.
    """
    shape = check_input_shape(input_shape)
    settings = resolve_timing(timing, **overrides)
    return table_meta(get_backend(settings.backend), model, shape, groups, settings)


def table_meta(
    timer: LatencyBackend,
    model: nn.Module,
    shape: tuple[int, ...],
    groups: Sequence[ChannelGroup],
    timing: TimingSettings,
) -> dict[str, Any]:
    """:func:`expected_meta` with the backend already resolved (one probe run)."""
    with torch.random.fork_rng(devices=[]):  # the caller's RNG must not move
        probe = nn.Conv2d(1, 1, 1).to(model_dtype(model))
    env = timer.measure(probe, (1, 2, 2), timing.with_(batch_size=1, warmup=0, repeats=1)).env
    dev = str(env.get("device", timing.device))
    return {
        "format_version": FORMAT_VERSION,
        "backend": timer.name,
        "backend_version": str(env.get("version", "")),
        "torch_version": torch.__version__,
        "device": dev,
        "device_name": device_name(dev),
        "machine": platform.machine(),
        "threads": env.get("threads", timing.threads),
        "batch_size": int(timing.batch_size),
        "input_shape": list(shape),
        "dtype": str(model_dtype(model)).removeprefix("torch."),
        "fingerprint": architecture_fingerprint(model),
        "groups_fingerprint": groups_fingerprint(groups),
    }


def describe(meta: Mapping[str, Any], keys: Iterable[str]) -> str:
    """``"key=value, ..."`` of ``meta`` for ``keys`` (the staleness warning's wording)."""
    return ", ".join(f"{k}={meta.get(k)!r}" for k in keys)
