"""CostReport maths, serialisation and the measure_cost / CostModel entry points."""

from __future__ import annotations

import json
import math

import pytest
from torch import nn

from iaprune.cost import (
    CostModel,
    CostReport,
    MeasuredCostModel,
    StaticCostModel,
    measure_cost,
)
from iaprune.errors import IAPruneError


def net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))


# conv: 4*4*2*1*9 = 288, linear: 32*3 = 96
NET_MACS = 4 * 4 * 2 * 1 * 9 + 32 * 3
NET_PARAMS = (2 * 9 + 2) + (32 * 3 + 3)


def test_ratio_to_static_only() -> None:
    base = CostReport(macs=1000, params=200, activation_bytes=400)
    small = CostReport(macs=250, params=50, activation_bytes=300)
    assert small.ratio_to(base) == {"macs": 0.25, "params": 0.25, "activation_bytes": 0.75}


def test_ratio_to_with_latency() -> None:
    base = CostReport(macs=1000, params=200, activation_bytes=400, latency_ms=2.0)
    small = CostReport(macs=500, params=100, activation_bytes=400, latency_ms=1.5)
    ratios = small.ratio_to(base)
    assert ratios == {"macs": 0.5, "params": 0.5, "activation_bytes": 1.0, "latency": 0.75}
    # latency only when BOTH reports have it
    no_lat = CostReport(macs=500, params=100, activation_bytes=400)
    assert "latency" not in no_lat.ratio_to(base)
    assert "latency" not in small.ratio_to(no_lat)


def test_ratio_to_zero_base() -> None:
    base = CostReport(macs=0, params=0, activation_bytes=4)
    ratios = CostReport(macs=0, params=3, activation_bytes=4).ratio_to(base)
    assert ratios["macs"] == 1.0
    assert math.isinf(ratios["params"])


def test_flops_and_dict_round_trip() -> None:
    report = CostReport(
        macs=10,
        params=2,
        activation_bytes=8,
        latency_ms=1.25,
        latency_spread_ms=0.5,
        latency_env={"backend": "torch", "threads": 1},
    )
    assert report.flops == 20
    data = report.to_dict()
    assert data == {
        "macs": 10,
        "params": 2,
        "activation_bytes": 8,
        "latency_ms": 1.25,
        "latency_spread_ms": 0.5,
        "latency_env": {"backend": "torch", "threads": 1},
    }
    assert CostReport.from_dict(json.loads(json.dumps(data))) == report


def test_measure_cost_static() -> None:
    report = measure_cost(net(), (1, 4, 4))
    assert (report.macs, report.params) == (NET_MACS, NET_PARAMS)
    assert report.activation_bytes > 0
    assert report.latency_ms is None and report.latency_env is None
    assert not report.has_latency


def test_measure_cost_with_latency() -> None:
    report = measure_cost(net(), (1, 4, 4), latency=True, batch_size=3, warmup=0, repeats=3)
    assert report.macs == NET_MACS  # still per sample
    assert report.latency_ms is not None and report.latency_ms > 0
    assert report.latency_spread_ms is not None and report.latency_spread_ms >= 0
    assert report.latency_env is not None
    assert report.latency_env["batch_size"] == 3
    assert report.latency_env["repeats"] == 3
    json.dumps(report.to_dict())  # JSON-serialisable


def test_measure_cost_unknown_backend() -> None:
    with pytest.raises(IAPruneError, match="torch"):
        measure_cost(net(), (1, 4, 4), latency=True, backend="nope")


def test_cost_models() -> None:
    static = StaticCostModel()
    measured = MeasuredCostModel("torch", warmup=0, repeats=2)
    assert isinstance(static, CostModel) and isinstance(measured, CostModel)
    s = static.measure(net(), (1, 4, 4))
    m = measured.measure(net(), (1, 4, 4))
    assert s.latency_ms is None
    assert m.latency_ms is not None and m.latency_env is not None
    assert (m.macs, m.params, m.activation_bytes) == (s.macs, s.params, s.activation_bytes)


def test_measured_cost_model_rejects_unknown_backend_early() -> None:
    with pytest.raises(IAPruneError, match="unknown latency backend"):
        MeasuredCostModel("nope")
