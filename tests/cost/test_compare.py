"""Interleaved A/B latency comparison: statistics on synthetic timings, no real timing."""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator

import numpy as np
import pytest
from torch import nn

from iaprune.cost import (
    CompareSettings,
    LatencyBackend,
    Runner,
    TimingSettings,
    compare_latency,
    mean_interval,
    ratio_interval,
)
from iaprune.cost.latency import Timing
from iaprune.errors import IAPruneError

SHAPE = (3, 8, 8)


def test_mean_interval_is_geometric_mean_with_t_interval() -> None:
    values = [1.0, 2.0, 4.0]
    got = mean_interval(values, 0.95)
    assert got.value == pytest.approx(2.0)
    logs = np.log(values)
    half = 4.302652729911275 * logs.std(ddof=1) / math.sqrt(3)  # t(0.975, 2)
    assert got.low == pytest.approx(2.0 * math.exp(-half))
    assert got.high == pytest.approx(2.0 * math.exp(half))
    assert got.rounds == 3 and got.low < got.value < got.high


def test_single_value_has_unbounded_interval() -> None:
    got = mean_interval([3.0])
    assert got.value == pytest.approx(3.0) and got.low == 0.0 and math.isinf(got.high)
    assert got.wide()


@pytest.mark.parametrize("bad", [[], [0.0, 1.0], [-1.0], [float("nan")]])
def test_mean_interval_rejects_bad_values(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        mean_interval(bad)


def test_paired_ratio_cancels_drift_that_independent_medians_do_not() -> None:
    """A machine that slows down 3x between rounds: the paired ratio stays exact."""
    drift = [1.0, 1.2, 0.9, 3.0, 2.5, 2.8]
    base = [10.0 * d for d in drift]
    pruned = [5.0 * d for d in drift]
    got = ratio_interval(base, pruned)
    assert got.value == pytest.approx(0.5)
    assert got.half_width == pytest.approx(0.0, abs=1e-12)
    # the same timings taken one model after the other (first half vs second half)
    unpaired = float(np.median(pruned[3:])) / float(np.median(base[:3]))
    assert abs(unpaired - 0.5) > 0.05


def test_ratio_interval_covers_the_true_ratio_under_noise() -> None:
    """95 % intervals of noisy paired rounds cover the true ratio about 95 % of the time."""
    rng = random.Random(0)
    covered = 0
    trials = 400
    for _ in range(trials):
        base, pruned = [], []
        for _ in range(8):
            load = rng.uniform(1.0, 2.0)  # common to both models in a round
            base.append(10.0 * load * math.exp(rng.gauss(0, 0.05)))
            pruned.append(4.0 * load * math.exp(rng.gauss(0, 0.05)))
        got = ratio_interval(base, pruned)
        covered += got.low <= 0.4 <= got.high
    assert 0.9 <= covered / trials <= 0.99


def test_ratio_interval_rejects_unpaired() -> None:
    with pytest.raises(ValueError, match="unpaired"):
        ratio_interval([1.0, 2.0], [1.0])


def test_wide_flag_uses_relative_half_width() -> None:
    tight = ratio_interval([10.0, 10.0, 10.0, 10.0], [5.0, 5.1, 4.9, 5.0])
    loose = ratio_interval([10.0, 10.0, 10.0, 10.0], [3.0, 7.0, 4.0, 6.0])
    assert not tight.wide(0.05) and loose.wide(0.05)
    assert tight.to_dict()["half_width"] == pytest.approx(tight.half_width)


class SyntheticBackend(LatencyBackend):
    """Times nothing: each model's block is its ``ms`` attribute times a per-block load."""

    name = "synthetic"

    def __init__(self, noise: float = 0.0, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.noise = noise
        self.opened: list[str] = []
        self.blocks: list[tuple[str, int, int]] = []
        self.load = 1.0

    @contextlib.contextmanager
    def runner(
        self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings
    ) -> Iterator[Runner]:
        label = str(model.label)
        self.opened.append(label)

        def block(warmup: int, repeats: int) -> list[float]:
            self.blocks.append((label, warmup, repeats))
            self.load = self.rng.uniform(1.0, 3.0) if self.noise else 1.0
            return [
                float(model.ms) * self.load * math.exp(self.rng.gauss(0, self.noise))
                for _ in range(repeats)
            ]

        yield Runner(block, "0", settings.threads, "cpu", {"synthetic": True})

    def time_runs(
        self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings
    ) -> Timing:
        raise AssertionError("compare_latency must use the runner")


def _model(label: str, ms: float) -> nn.Module:
    m = nn.Identity()
    m.label, m.ms = label, ms  # type: ignore[assignment]
    return m


def test_compare_latency_interleaves_and_reports_ratios() -> None:
    backend = SyntheticBackend()
    models = {"base": _model("base", 10.0), "half": _model("half", 5.0)}
    settings = CompareSettings(block=3, block_warmup=1, min_rounds=4, max_rounds=10)
    got = compare_latency(models, SHAPE, TimingSettings(threads=2), settings, backend=backend)
    assert backend.opened == ["base", "half"]  # prepared once each
    assert got.reference == "base" and got.rounds == 4  # exact timings: stops at min_rounds
    assert got.ratios["half"].value == pytest.approx(0.5)
    assert got.ratios["base"].value == pytest.approx(1.0)
    assert got.latency["base"].value == pytest.approx(10.0)
    assert got.flagged() == []
    timed = [b for b in backend.blocks if b[2] == 3]
    assert len(timed) == 8 and all(b[1] == 1 for b in timed)
    assert {b[0] for b in timed[:2]} == {"base", "half"}  # every round times both
    assert got.env["threads"] == 2 and got.env["interleaved"] is True
    assert got.to_dict()["ratio"]["half"]["value"] == pytest.approx(0.5)


def test_compare_latency_runs_more_rounds_when_noisy_and_flags_wide_intervals() -> None:
    models = {"base": _model("base", 10.0), "other": _model("other", 7.0)}
    settings = CompareSettings(min_rounds=3, max_rounds=6, target=0.001, tolerance=0.01)
    got = compare_latency(models, SHAPE, None, settings, backend=SyntheticBackend(noise=0.3))
    assert got.rounds == 6  # the target is never reached
    assert "other" in got.flagged()
    assert got.flagged(tolerance=10.0) == []


def test_compare_latency_rejects_bad_input_before_timing() -> None:
    backend = SyntheticBackend()
    with pytest.raises(IAPruneError, match="at least one model"):
        compare_latency({}, SHAPE, backend=backend)
    with pytest.raises(IAPruneError, match="unknown reference"):
        compare_latency({"a": _model("a", 1.0)}, SHAPE, reference="b", backend=backend)
    with pytest.raises(IAPruneError, match="min_rounds"):
        CompareSettings(min_rounds=1)
    with pytest.raises(IAPruneError, match="unknown latency backend"):
        compare_latency({"a": _model("a", 1.0)}, SHAPE, TimingSettings(backend="nope"))
    assert backend.opened == []


def test_default_runner_reuses_time_runs() -> None:
    """A backend without its own runner is timed through time_runs, block by block."""

    class Plain(LatencyBackend):
        name = "plain"
        calls: list[int] = []

        def time_runs(
            self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings
        ) -> Timing:
            self.calls.append(settings.repeats)
            return Timing([2.0] * settings.repeats, "1", settings.threads, "cpu")

    got = compare_latency(
        {"a": _model("a", 0), "b": _model("b", 0)},
        SHAPE,
        settings=CompareSettings(min_rounds=2, block=2),
        backend=Plain(),
    )
    assert got.ratios["b"].value == pytest.approx(1.0) and got.rounds == 2
    assert Plain.calls.count(2) == 4


def test_min_statistic_ignores_preempted_runs() -> None:
    """One run per block hit by another job: the block minimum recovers the exact ratio."""

    class Preempted(SyntheticBackend):
        @contextlib.contextmanager
        def runner(
            self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings
        ) -> Iterator[Runner]:
            def block(warmup: int, repeats: int) -> list[float]:
                runs = [float(model.ms)] * repeats
                runs[self.rng.randrange(repeats)] *= self.rng.uniform(2.0, 5.0)
                return runs

            yield Runner(block, "0", 1, "cpu")

    models = {"base": _model("base", 10.0), "other": _model("other", 3.0)}
    slow = CompareSettings(block=2, statistic="median", min_rounds=6, max_rounds=6)
    fast = CompareSettings(block=2, statistic="min", min_rounds=6, max_rounds=6)
    by_median = compare_latency(models, SHAPE, settings=slow, backend=Preempted())
    by_min = compare_latency(models, SHAPE, settings=fast, backend=Preempted())
    assert by_min.ratios["other"].value == pytest.approx(0.3)
    assert by_min.ratios["other"].half_width == pytest.approx(0.0, abs=1e-9)
    assert by_median.ratios["other"].half_width > 0.01
    with pytest.raises(IAPruneError, match="statistic"):
        CompareSettings(statistic="mean")  # type: ignore[arg-type]
