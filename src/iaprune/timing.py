"""How latency is timed: one frozen settings object for the whole package.

:class:`TimingSettings` names the latency backend and the timing arguments (batch size,
intra-op threads, warm-up, repeats, device). The run configuration
(:class:`iaprune.config.CostConfig` extends it), the latency backends, the cost models,
the latency lookup table, export and the benchmarks all take this one object, so a
setting is spelled out (and validated) in one place only.

This module needs neither torch nor the cost package, so the configuration can import it
cheaply; :mod:`iaprune.cost` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from iaprune.errors import IAPruneError

__all__ = ["MAX_BATCH", "TimingSettings", "check_timing_args", "resolve_timing"]

MAX_BATCH = 65_536
"""Largest timed batch (export's ``--batch-size``, ``--batch-size-latency``)."""


def check_timing_args(*, batch_size: int, threads: int | None, warmup: int, repeats: int) -> None:
    """Raise :class:`IAPruneError` unless batch size (<= :data:`MAX_BATCH`), threads and
    repeats are >= 1 and warmup >= 0."""
    if batch_size < 1:
        raise IAPruneError(f"batch size must be >= 1, got {batch_size}")
    if batch_size > MAX_BATCH:
        raise IAPruneError(f"batch size must be at most {MAX_BATCH}, got {batch_size}")
    if threads is not None and threads < 1:
        raise IAPruneError(f"threads must be >= 1 (or None to leave as is), got {threads}")
    if warmup < 0:
        raise IAPruneError(f"warmup must be >= 0, got {warmup}")
    if repeats < 1:
        raise IAPruneError(f"repeats must be >= 1, got {repeats}")


@dataclass(frozen=True)
class TimingSettings:
    """Validated settings of one latency measurement.

    Attributes:
        batch_size: samples per timed forward pass (latency is per batch).
        threads: intra-op threads while timing, restored afterwards; ``None`` leaves
            the current setting.
        warmup: untimed forward passes before timing.
        repeats: timed forward passes (the median is reported).
        device: device to run on, e.g. ``"cpu"`` or ``"cuda"``.
        backend: name of the latency backend (:func:`iaprune.cost.list_backends`).

    The positional order of the first five fields is that of the earlier
    backend-internal settings object, so ``TimingSettings(1, 1, 5, 30, "cpu")`` works.

    Raises:
        IAPruneError: batch size, threads or repeats below 1, or warmup below 0.
    """

    batch_size: int = 1
    threads: int | None = 1
    warmup: int = 5
    repeats: int = 30
    device: str = "cpu"
    backend: str = "torch"

    def __post_init__(self) -> None:
        check_timing_args(
            batch_size=self.batch_size,
            threads=self.threads,
            warmup=self.warmup,
            repeats=self.repeats,
        )

    def with_(self, **changes: Any) -> TimingSettings:
        """A copy with ``changes`` applied (validated); unknown names raise ``TypeError``.

        Subclasses (the run configuration's :class:`~iaprune.config.CostConfig`) come
        back as plain :class:`TimingSettings`: only the timing fields are kept.
        """
        return replace(self.timing, **changes) if changes else self.timing

    @property
    def timing(self) -> TimingSettings:
        """These settings as a plain :class:`TimingSettings` (drops subclass fields)."""
        if type(self) is TimingSettings:
            return self
        return TimingSettings(**self.env())

    def env(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (for results headers and environment records)."""
        return {f.name: getattr(self, f.name) for f in fields(TimingSettings)}


def resolve_timing(timing: TimingSettings | None = None, **overrides: Any) -> TimingSettings:
    """``timing`` (default :class:`TimingSettings()`) with keyword ``overrides`` applied.

    The shared path of every API that takes a settings object and still accepts the
    individual keyword arguments (``backend=``, ``batch_size=``, ...) for compatibility.

    Raises:
        TypeError: an override is not a timing setting.
        IAPruneError: the resulting settings are invalid.
    """
    base = TimingSettings() if timing is None else timing.timing
    return base.with_(**overrides)
