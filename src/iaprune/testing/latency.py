"""The latency-backend contract: :class:`LatencyBackendSuite`.

Every backend registered in :data:`iaprune.cost.latency.BACKENDS` must, for a tiny model:

* report the timed runs asked for, finite and positive, with their median and IQR, and
  the environment every backend records (backend name, version, threads, device, batch
  size, input shape, warm-up, repeats);
* leave the model's parameters, buffers, devices and ``training`` flags, the global RNG
  and torch's thread count as they were;
* reject invalid timing settings and input shapes with :class:`IAPruneError`;
* agree with eager torch within two orders of magnitude (no timing thresholds beyond that);
* be registered under its own :attr:`~iaprune.cost.latency.LatencyBackend.name` with a
  positive preferred channel multiple, and explain unavailability with an
  :class:`IAPruneError`.

Backends that are not available here (missing package, no GPU) are skipped with their
``unavailable_error``. Subclass and set :attr:`LatencyBackendSuite.skip` to leave out
backends another test covers (with the reason).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import ClassVar

import pytest
import torch

from iaprune.cost.latency import (
    BACKENDS,
    LatencyBackend,
    LatencyResult,
    default_round_to,
    get_backend,
    list_backends,
)
from iaprune.errors import IAPruneError
from iaprune.testing._models import assert_unchanged, snapshot, tiny_model
from iaprune.timing import TimingSettings

__all__ = ["ENV_KEYS", "LatencyBackendSuite"]

ENV_KEYS = frozenset(
    {"backend", "version", "threads", "device", "batch_size", "input_shape", "warmup", "repeats"}
)
"""Environment fields every :class:`~iaprune.cost.latency.LatencyResult` carries."""

INPUT_SHAPE = (1, 16, 16)
BATCH = 2
INVALID = [{"repeats": 0}, {"warmup": -1}, {"batch_size": 0}, {"threads": 0}]


def _device(cls: type[LatencyBackend]) -> str:
    """The device a backend is tested on: ``cuda`` for GPU-only backends, else ``cpu``."""
    return "cuda" if cls.name == "cuda" else "cpu"


class LatencyBackendSuite:
    """Contract tests run once per registered latency backend (see the module docstring)."""

    skip: ClassVar[dict[str, str]] = {}
    """Backend names to leave out of this run, with the reason shown by pytest."""

    @pytest.fixture(params=list_backends())
    def backend_name(self, request: pytest.FixtureRequest) -> str:
        """Each registered backend's name (skipped where it is not available)."""
        name = str(request.param)
        if name in self.skip:
            pytest.skip(self.skip[name])
        cls = BACKENDS.get(name)
        if not cls.available():
            pytest.skip(str(cls.unavailable_error()))
        return name

    @pytest.fixture
    def backend(self, backend_name: str) -> LatencyBackend:
        """An instance of the backend under test."""
        return get_backend(backend_name)

    @pytest.fixture
    def other_threads(self) -> Iterator[int]:
        """A thread count other than torch's current one; the setting is restored after."""
        before = torch.get_num_threads()
        yield 2 if before == 1 else 1
        torch.set_num_threads(before)

    def settings(self, backend: LatencyBackend, **changes: object) -> TimingSettings:
        """Fast settings for ``backend``: batch 2, one warm-up, three repeats."""
        base = TimingSettings(
            batch_size=BATCH,
            warmup=1,
            repeats=3,
            device=_device(type(backend)),
            backend=backend.name,
        )
        return base.with_(**changes)

    def test_registered_under_its_name(self, backend_name: str) -> None:
        cls = BACKENDS.get(backend_name)
        assert cls.name == backend_name
        assert isinstance(cls.preferred_multiple, int) and cls.preferred_multiple >= 1
        assert default_round_to(backend_name) == cls.preferred_multiple
        assert isinstance(cls.unavailable_error(), IAPruneError)

    def test_result_and_environment(self, backend: LatencyBackend, other_threads: int) -> None:
        timing = self.settings(backend, threads=other_threads)
        result = backend.measure(tiny_model(), INPUT_SHAPE, timing)
        assert isinstance(result, LatencyResult)
        assert len(result.runs_ms) == timing.repeats
        assert all(math.isfinite(r) and r > 0 for r in result.runs_ms)
        assert math.isfinite(result.median_ms) and result.median_ms > 0
        assert math.isfinite(result.spread_ms) and result.spread_ms >= 0
        assert min(result.runs_ms) <= result.median_ms <= max(result.runs_ms)
        assert result.env.keys() >= ENV_KEYS
        assert result.env["backend"] == backend.name
        assert isinstance(result.env["version"], str) and result.env["version"]
        assert result.env["batch_size"] == BATCH
        assert result.env["input_shape"] == list(INPUT_SHAPE)
        assert result.env["threads"] in (other_threads, None)  # None: not applicable (GPU)
        assert str(result.env["device"]).startswith(timing.device)
        assert (result.env["warmup"], result.env["repeats"]) == (timing.warmup, timing.repeats)

    def test_keyword_settings_match_the_settings_object(self, backend: LatencyBackend) -> None:
        result = backend.measure(tiny_model(), INPUT_SHAPE, self.settings(backend), repeats=2)
        assert len(result.runs_ms) == 2 and result.env["repeats"] == 2

    def test_leaves_model_rng_and_threads_unchanged(
        self, backend: LatencyBackend, other_threads: int
    ) -> None:
        model = tiny_model()
        before = snapshot(model)
        threads_before = torch.get_num_threads()
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        backend.measure(model, INPUT_SHAPE, self.settings(backend, threads=other_threads))
        assert_unchanged(model, before)
        assert torch.get_num_threads() == threads_before
        assert torch.equal(torch.rand(3), expected), "the global RNG was consumed"

    @pytest.mark.parametrize("change", INVALID)
    def test_rejects_invalid_settings(
        self, backend: LatencyBackend, change: dict[str, int]
    ) -> None:
        with pytest.raises(IAPruneError):
            backend.measure(tiny_model(), INPUT_SHAPE, None, **change)

    def test_rejects_bad_input_shape(self, backend: LatencyBackend) -> None:
        with pytest.raises(IAPruneError, match="input shape"):
            backend.measure(tiny_model(), (1, 0, 16), self.settings(backend))

    def test_same_order_of_magnitude_as_eager_torch(self, backend: LatencyBackend) -> None:
        timing = self.settings(backend, warmup=2, repeats=5)
        eager = get_backend("torch").measure(tiny_model(), INPUT_SHAPE, timing.with_(device="cpu"))
        result = backend.measure(tiny_model(), INPUT_SHAPE, timing)
        assert 1 / 100 <= result.median_ms / eager.median_ms <= 100
