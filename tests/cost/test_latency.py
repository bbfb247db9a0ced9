"""Latency backends: registry, the eager torch backend and the timing helpers.

No timing thresholds: only structure, finiteness and restoration of global state.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from iaprune.cost import (
    BACKENDS,
    LatencyBackend,
    LatencyResult,
    get_backend,
    list_backends,
    time_callable,
)
from iaprune.cost.latency import Timing, summarize_runs
from iaprune.errors import IAPruneError

ENV_KEYS = {
    "backend",
    "version",
    "threads",
    "device",
    "batch_size",
    "input_shape",
    "warmup",
    "repeats",
}


def small_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2)
    )


def test_torch_backend_registered() -> None:
    assert "torch" in list_backends()
    assert "torch" in list_backends(available_only=True)
    backend = get_backend("torch")
    assert isinstance(backend, LatencyBackend)
    assert backend.name == "torch"


def test_unknown_backend_lists_valid_names() -> None:
    with pytest.raises(IAPruneError, match=r"unknown latency backend 'nope'.*torch"):
        get_backend("nope")


def test_unavailable_backend_is_user_error() -> None:
    class Never(LatencyBackend):
        name = "never-test"

        @classmethod
        def available(cls) -> bool:
            return False

        def time_runs(self, *args: object, **kwargs: object) -> Timing:
            raise AssertionError("not reached")

    BACKENDS.register(Never.name)(Never)
    try:
        assert "never-test" not in list_backends(available_only=True)
        with pytest.raises(IAPruneError, match="not available"):
            get_backend("never-test")
    finally:
        BACKENDS._items.pop(Never.name)


def test_torch_backend_measures() -> None:
    net = small_net().train()
    result = get_backend("torch").measure(
        net, (3, 4, 4), batch_size=2, threads=1, warmup=1, repeats=7
    )
    assert len(result.runs_ms) == 7
    assert all(math.isfinite(r) and r > 0 for r in result.runs_ms)
    assert math.isfinite(result.median_ms) and result.median_ms > 0
    assert math.isfinite(result.spread_ms) and result.spread_ms >= 0
    assert result.env.keys() >= ENV_KEYS
    assert result.env["backend"] == "torch"
    assert result.env["version"] == torch.__version__
    assert result.env["threads"] == 1
    assert result.env["device"] == "cpu"
    assert result.env["batch_size"] == 2
    assert result.env["input_shape"] == [3, 4, 4]
    assert (result.env["warmup"], result.env["repeats"]) == (1, 7)
    assert net.training and all(m.training for m in net)


def test_thread_count_restored() -> None:
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    result = get_backend("torch").measure(small_net(), (3, 4, 4), threads=other, repeats=2)
    assert result.env["threads"] == other
    assert torch.get_num_threads() == before


def test_threads_none_leaves_setting() -> None:
    before = torch.get_num_threads()
    result = get_backend("torch").measure(small_net(), (3, 4, 4), threads=None, repeats=2)
    assert result.env["threads"] == before
    assert torch.get_num_threads() == before


def test_global_rng_untouched() -> None:
    net = small_net()  # built first: initialising layers uses the global RNG
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    get_backend("torch").measure(net, (3, 4, 4), warmup=0, repeats=1)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    "kwargs",
    [{"repeats": 0}, {"warmup": -1}, {"batch_size": 0}, {"threads": 0}],
)
def test_invalid_timing_args(kwargs: dict[str, int]) -> None:
    with pytest.raises(IAPruneError):
        get_backend("torch").measure(small_net(), (3, 4, 4), **kwargs)


def test_time_callable_counts_calls() -> None:
    calls = []
    runs = time_callable(lambda: calls.append(1), warmup=3, repeats=4)
    assert len(calls) == 3 + 4
    assert len(runs) == 4
    assert all(r >= 0 for r in runs)


def test_summarize_runs_median_and_iqr() -> None:
    median, iqr = summarize_runs([1.0, 2.0, 3.0, 4.0, 5.0])
    assert median == 3.0
    assert iqr == pytest.approx(4.0 - 2.0)
    assert summarize_runs([7.0]) == (7.0, 0.0)
    result = LatencyResult.from_runs([5.0, 1.0, 3.0], {"backend": "x"})
    assert (result.median_ms, result.runs_ms) == (3.0, [5.0, 1.0, 3.0])
