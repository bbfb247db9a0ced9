"""Latency backend extension point.

A backend times the forward pass of a model in one runtime. Built in: ``torch`` (eager),
``torchscript`` (traced and frozen), ``torch-compile`` (inductor), ``onnxruntime``
(CPUExecutionProvider) and ``cuda`` (eager on the GPU, CUDA events). To add one (a lookup
table, TensorRT, ...), subclass :class:`LatencyBackend` and register the class::

    @BACKENDS.register("mybackend")
    class MyBackend(LatencyBackend):
        name = "mybackend"
        preferred_multiple = 8

        @classmethod
        def available(cls) -> bool:
            return importlib.util.find_spec("myruntime") is not None

        def time_runs(self, model, shape, settings: TimingSettings) -> Timing:
            ...  # prepare the runtime, then
            runs = time_callable(run_once, settings.warmup, settings.repeats)
            return Timing(runs, version=myruntime.__version__, threads=..., device="cpu")

:meth:`LatencyBackend.measure` validates the arguments, calls ``time_runs`` and builds the
:class:`LatencyResult` with the environment every backend reports.

The module defining it must be imported by :mod:`iaprune.cost.latency` so that the
registration runs.
"""

from __future__ import annotations

import contextlib
import gc
import platform
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from torch import nn

from iaprune._registry import Registry
from iaprune.cost._util import check_input_shape
from iaprune.errors import IAPruneError
from iaprune.timing import TimingSettings, check_timing_args, resolve_timing

__all__ = [
    "BACKENDS",
    "LatencyBackend",
    "LatencyResult",
    "NodeTime",
    "Runner",
    "Timing",
    "TimingSettings",
    "check_timing_args",
    "default_round_to",
    "get_backend",
    "list_backends",
    "measure_latency",
    "summarize_runs",
    "time_callable",
]


def summarize_runs(runs_ms: Sequence[float]) -> tuple[float, float]:
    """Median and inter-quartile range (75th - 25th percentile, linear interpolation)."""
    if len(runs_ms) == 0:
        raise ValueError("cannot summarise zero runs")
    q25, q50, q75 = np.percentile(np.asarray(runs_ms, dtype=float), [25.0, 50.0, 75.0])
    return float(q50), float(q75 - q25)


@dataclass(frozen=True)
class LatencyResult:
    """Repeated latency measurements of one batch.

    Attributes:
        median_ms: median of ``runs_ms``.
        spread_ms: inter-quartile range of ``runs_ms``.
        runs_ms: every timed run, in milliseconds, in the order they ran.
        env: how it was measured (backend, version, threads, device, batch_size,
            input_shape, warmup, repeats, ...).
    """

    median_ms: float
    spread_ms: float
    runs_ms: list[float]
    env: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_runs(cls, runs_ms: Sequence[float], env: dict[str, object]) -> LatencyResult:
        """Build a result from raw run times, computing median and IQR."""
        median, spread = summarize_runs(runs_ms)
        return cls(median_ms=median, spread_ms=spread, runs_ms=list(runs_ms), env=dict(env))


@contextlib.contextmanager
def frozen_gc() -> Iterator[None]:
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


def time_callable(fn: Callable[[], object], warmup: int, repeats: int) -> list[float]:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed.

    Each timed call is measured with :func:`time.perf_counter`; the garbage collector
    is collected before and disabled during the timed calls (restored afterwards).
    ``fn`` must itself wait for asynchronous work (e.g. CUDA synchronise).

    Returns:
        ``repeats`` durations in milliseconds.
    """
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got {warmup}, {repeats}")
    for _ in range(warmup):
        fn()
    runs: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            runs.append((time.perf_counter() - start) * 1e3)
    finally:
        if gc_was_enabled:
            gc.enable()
    return runs


@dataclass(frozen=True)
class Timing:
    """What a backend's :meth:`LatencyBackend.time_runs` returns.

    Attributes:
        runs_ms: every timed run in milliseconds.
        version: runtime version for the environment record.
        threads: thread count actually in effect (``None`` when not applicable).
        device: the device that ran, normalised (e.g. ``"cuda:0 (H100)"``).
        extra: backend-specific environment fields (mode, provider, ...).
    """

    runs_ms: list[float]
    version: str
    threads: int | None
    device: str
    extra: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Runner:
    """A model prepared once in a runtime, timed block by block (:meth:`LatencyBackend.runner`).

    Attributes:
        time: ``time(warmup, repeats)`` runs ``warmup`` untimed and ``repeats`` timed
            forward passes and returns the timed durations in milliseconds.
        version: runtime version for the environment record.
        threads: thread count in effect (``None`` when not applicable).
        device: the device that runs, normalised.
        extra: backend-specific environment fields.
    """

    time: Callable[[int, int], list[float]]
    version: str
    threads: int | None
    device: str
    extra: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeTime:
    """One node of a runtime's executed graph, as its profiler saw it.

    Attributes:
        name: the runtime's node name.
        op: the operator type (``"Conv"``, ``"Gemm"``, ``"MaxPool"``, ...).
        ms: the node's time per call (the statistic over the profiled runs).
        kernel: spatial kernel size of a convolution's weight, else ``None``.
        in_spatial: spatial size of the node's first input (``()`` when it has none).
    """

    name: str
    op: str
    ms: float
    kernel: tuple[int, ...] | None = None
    in_spatial: tuple[int, ...] = ()


class LatencyBackend(ABC):
    """Measures forward-pass latency of a model in one runtime.

    Subclasses set :attr:`name` (the registry name) and :attr:`preferred_multiple`,
    override :meth:`available` (and :meth:`unavailable_error` to say why) when they
    need optional dependencies or hardware, and implement :meth:`time_runs`.
    Backends must not change the model's parameters or ``training`` flags, and must
    restore any global setting they change (thread counts, ...).
    """

    name: ClassVar[str] = ""
    preferred_multiple: ClassVar[int] = 8
    """Channel multiple the runtime runs fastest with (vectorised kernels, tensor cores):
    the default ``--round-to`` of the search, see :func:`default_round_to`."""

    @classmethod
    def available(cls) -> bool:
        """Whether this backend can run here (dependencies importable, device present)."""
        return True

    profiles_nodes: ClassVar[bool] = False
    """Whether :meth:`profile_nodes` is implemented (the runtime has a per-node profiler)."""

    def profile_nodes(
        self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings, statistic: str
    ) -> list[NodeTime]:
        """Time every node of the runtime's executed graph of ``model``, in execution order.

        ``settings.warmup`` runs are discarded and ``settings.repeats`` runs profiled; each
        node gets the ``statistic`` (``"median"`` or ``"min"``) of its times. Backends
        with :attr:`profiles_nodes` implement it.

        Raises:
            IAPruneError: the runtime has no per-node profiler.
        """
        raise IAPruneError(f"latency backend {self.name!r} cannot profile single nodes")

    @classmethod
    def unavailable_error(cls) -> IAPruneError:
        """The error :func:`get_backend` raises when :meth:`available` is false.

        Subclasses override it to say why (e.g. a :class:`MissingDependencyError`
        naming the pip extra); the default only names the backend.
        """
        return IAPruneError(f"latency backend {cls.name!r} is not available on this machine")

    def measure(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        settings: TimingSettings | None = None,
        **overrides: Any,
    ) -> LatencyResult:
        """Time ``settings.repeats`` forward passes of a ``(batch_size, *input_shape)`` input.

        Args:
            model: the network (not modified).
            input_shape: per-sample input shape, e.g. ``(3, 32, 32)``.
            settings: batch size, threads, warm-up, repeats and device
                (:class:`~iaprune.timing.TimingSettings`; default: its defaults). Its
                ``backend`` field is not consulted: this backend does the timing.
            **overrides: individual :class:`~iaprune.timing.TimingSettings` fields
                (``batch_size=4``, ``repeats=3``, ...) replacing those of ``settings``.

        Returns:
            ``len(result.runs_ms) == settings.repeats`` timed runs and the environment
            record (backend, version, threads, device, batch size, input shape, ...).

        Raises:
            IAPruneError: invalid settings, or the runtime cannot run the model.
        """
        timing = resolve_timing(settings, **overrides)
        shape = check_input_shape(input_shape)
        result = self.time_runs(model, shape, timing)
        env: dict[str, object] = {
            "backend": self.name,
            "version": result.version,
            "threads": result.threads,
            "device": result.device,
            "batch_size": timing.batch_size,
            "input_shape": list(shape),
            "warmup": timing.warmup,
            "repeats": timing.repeats,
            "machine": platform.machine(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            **result.extra,
        }
        return LatencyResult.from_runs(result.runs_ms, env)

    @contextlib.contextmanager
    def runner(
        self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings
    ) -> Iterator[Runner]:
        """Prepare ``model`` once and yield a :class:`Runner` that times blocks of runs.

        Interleaved A/B timing (:func:`iaprune.cost.compare_latency`) opens one runner per
        model and alternates short blocks between them, so preparation (export, session
        creation, tracing) is paid once and slow drifts of the machine hit every model
        alike. Inside the block the runtime's settings (threads, eval mode) hold; they
        are restored on exit.

        The default re-runs :meth:`time_runs` for every block (correct, but repeats the
        preparation); backends with an expensive preparation override it.
        """
        first = self.time_runs(model, shape, settings.with_(warmup=0, repeats=1))

        def block(warmup: int, repeats: int) -> list[float]:
            return self.time_runs(
                model, shape, settings.with_(warmup=warmup, repeats=repeats)
            ).runs_ms

        yield Runner(block, first.version, first.threads, first.device, first.extra)

    def time_with_runner(
        self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings
    ) -> Timing:
        """:meth:`time_runs` for a backend that overrides :meth:`runner`: one block."""
        with self.runner(model, shape, settings) as run:
            runs = run.time(settings.warmup, settings.repeats)
        return Timing(runs, run.version, run.threads, run.device, run.extra)

    @abstractmethod
    def time_runs(
        self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings
    ) -> Timing:
        """Run ``settings.warmup`` untimed and ``settings.repeats`` timed forward passes.

        Called by :meth:`measure` with validated settings; ``shape`` is per sample.
        Must leave ``model`` unchanged and restore any global setting it changes.
        """


BACKENDS: Registry[type[LatencyBackend]] = Registry("latency backend")
"""Latency backends by name; see :class:`LatencyBackend` for how to add one."""


def get_backend(name: str) -> LatencyBackend:
    """Instantiate the latency backend registered as ``name``.

    Raises:
        IAPruneError: ``name`` is unknown (the message lists the valid names) or the
            backend is registered but not available on this machine (the message says
            why and lists the available ones; a missing optional package raises
            :class:`~iaprune.errors.MissingDependencyError`).
    """
    cls = BACKENDS.get(name)
    if not cls.available():
        err = cls.unavailable_error()
        avail = ", ".join(list_backends(available_only=True)) or "none"
        err.args = (f"{err}; available backends: {avail}",)
        raise err
    return cls()


def default_round_to(backend_name: str) -> int:
    """The channel multiple that the latency backend ``backend_name`` prefers.

    The search rounds every group's kept filters to this multiple unless the user
    passes ``--round-to``. Availability is not checked: only the class attribute
    :attr:`LatencyBackend.preferred_multiple` is read.

    Raises:
        IAPruneError: ``backend_name`` is unknown (the message lists the valid names).
    """
    return int(BACKENDS.get(backend_name).preferred_multiple)


def list_backends(*, available_only: bool = False) -> list[str]:
    """Sorted names of the registered latency backends (optionally only usable ones)."""
    names = BACKENDS.names()
    if available_only:
        names = [n for n in names if BACKENDS.get(n).available()]
    return names


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    settings: TimingSettings | None = None,
    **overrides: Any,
) -> LatencyResult:
    """Time ``model`` with the backend ``settings.backend`` names (:meth:`LatencyBackend.measure`).

    Raises:
        IAPruneError: unknown or unavailable backend, invalid settings, or the runtime
            cannot run the model.
    """
    timing = resolve_timing(settings, **overrides)
    return get_backend(timing.backend).measure(model, input_shape, timing)
