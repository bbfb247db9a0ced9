"""Latency tables timed inside the whole model from a per-node profile.

A stand-in backend "profiles" each conv/linear node with a known function of its widths
(plus pooling nodes after some convs), so the table's grid can be checked exactly; one
test profiles a real ONNX Runtime session. No timing thresholds.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import torch
from torch import nn

from iaprune.cost.latency import (
    BACKENDS,
    LatencyBackend,
    NodeTime,
    Timing,
    TimingSettings,
    get_backend,
)
from iaprune.cost.latency.onnxruntime_backend import node_times
from iaprune.cost.lut import LatencyTable
from iaprune.cost.lut.fit import aligned, calibration_keeps
from iaprune.cost.lut.profile import attribute
from iaprune.cost.lut.trace import LayerSite, trace_layers
from iaprune.errors import IAPruneError
from iaprune.models import create_model
from iaprune.pruning import find_groups

SHAPE = (3, 16, 16)


def _conv_cost(cin: int, cout: int) -> float:
    return 0.01 + 0.002 * cin + 0.003 * cout + 0.0004 * cin * cout


def _nodes(model: nn.Module, shape: tuple[int, ...] = SHAPE) -> list[NodeTime]:
    """The stand-in profile: one node per conv/linear call, a pool node after each conv."""
    nodes: list[NodeTime] = []

    def hook(module: nn.Module, args: tuple[Any, ...], _out: Any) -> None:
        x = args[0]
        if isinstance(module, nn.Conv2d):
            cost = _conv_cost(module.in_channels, module.out_channels)
            kernel = tuple(int(k) for k in module.kernel_size)
            nodes.append(NodeTime("conv", "Conv", cost, kernel, tuple(x.shape[2:])))
            nodes.append(NodeTime("pool", "MaxPool", 0.001 * module.out_channels))
        else:
            cost = 0.0001 * module.in_features * module.out_features
            nodes.append(NodeTime("fc", "Gemm", cost))

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *shape))
    finally:
        for h in handles:
            h.remove()
    return nodes


class StandIn(LatencyBackend):
    """Whole-model latency = sum of the stand-in nodes + 0.05 ms; profiles its nodes."""

    name = "profile-stand-in"
    preferred_multiple = 4
    profiles_nodes = True

    def time_runs(self, model: nn.Module, shape: tuple[int, ...], settings: Any) -> Timing:
        total = sum(n.ms for n in _nodes(model, shape)) + 0.05
        return Timing([total] * settings.repeats, "1", 1, "cpu")

    def profile_nodes(
        self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings, statistic: str
    ) -> list[NodeTime]:
        return _nodes(model, shape)


@pytest.fixture
def stand_in() -> Iterator[str]:
    BACKENDS.register(StandIn.name)(StandIn)
    try:
        yield StandIn.name
    finally:
        BACKENDS._items.pop(StandIn.name)


def _resnet() -> nn.Module:
    torch.manual_seed(0)
    return create_model("test_resnet", num_classes=5, in_channels=3).eval()


def test_profiled_table_predicts_unseen_models_of_the_stand_in_exactly(stand_in: str) -> None:
    model = _resnet()
    groups = find_groups(model, torch.zeros((1, *SHAPE)))
    table = LatencyTable.build(
        model, SHAPE, groups, backend=stand_in, grid=3, samples=12, calibrate=0, warmup=0
    )
    assert table.meta["method"] == "profile"
    assert table.meta["multiple"] == 4
    full = table.predict({})
    assert full == pytest.approx(table.full_ms)
    rng = random.Random(3)
    backend = get_backend(stand_in)
    from iaprune.cost.lut.fit import prune_to

    for _ in range(5):
        keep = {g.name: aligned(g.channels * rng.uniform(0.2, 1), g.channels, 4) for g in groups}
        pruned = prune_to(model, SHAPE, groups, keep)
        truth = backend.measure(pruned, SHAPE, repeats=1, warmup=0).median_ms
        assert table.predict(keep) == pytest.approx(truth, rel=1e-6)


def test_explicit_profile_on_a_backend_without_a_profiler_is_refused() -> None:
    model = _resnet()
    groups = find_groups(model, torch.zeros((1, *SHAPE)))
    with pytest.raises(IAPruneError, match="cannot profile"):
        LatencyTable.build(model, SHAPE, groups, backend="torch", grid=2, method="profile")


def test_unmatched_profile_falls_back_to_stand_alone_blocks(
    stand_in: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _resnet()
    groups = find_groups(model, torch.zeros((1, *SHAPE)))
    monkeypatch.setattr(StandIn, "profile_nodes", lambda *a, **k: [])
    table = LatencyTable.build(
        model, SHAPE, groups, backend=stand_in, grid=2, samples=2, warmup=0, repeats=1
    )
    assert table.meta["method"] == "standalone"


def _sites() -> list[LayerSite]:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.Conv2d(8, 8, 1),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.Flatten(),
        nn.Linear(8 * 16 * 16, 4),
    )
    return trace_layers(net.eval(), SHAPE)


def test_attribute_matches_by_kernel_and_size_and_adds_followers() -> None:
    sites = _sites()
    nodes = [
        NodeTime("reorder-in", "ReorderInput", 9.0),  # before any layer: not attributed
        NodeTime("a", "Conv", 1.0, (3, 3), (16, 16)),
        NodeTime("b", "Conv", 2.0, (1, 1), (16, 16)),  # the 1x1 conv, matched by kernel
        NodeTime("c", "FusedConv", 3.0, (3, 3), (16, 16)),
        NodeTime("r", "ReorderOutput", 0.5),
        NodeTime("fc", "Gemm", 4.0),
    ]
    assert attribute(nodes, sites) == [1.0, 2.0, 3.5, 4.0]
    # execution order may interleave classes: the 1x1 conv first
    swapped = [nodes[2], nodes[1], nodes[3], nodes[5]]
    assert attribute(swapped, sites) == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize(
    "nodes",
    [
        [NodeTime("a", "Conv", 1.0, (3, 3), (16, 16))],  # layers left over
        [NodeTime("a", "Conv", 1.0, (5, 5), (16, 16))],  # no layer with this kernel
        [NodeTime("a", "Gemm", 1.0)] * 2,  # more nodes than layers
    ],
)
def test_attribute_refuses_profiles_that_do_not_match(nodes: list[NodeTime]) -> None:
    assert attribute(nodes, _sites()) is None


def test_node_times_reads_an_onnxruntime_trace() -> None:
    def event(name: str, dur: int, op: str, inputs: list) -> dict[str, Any]:
        args = {"op_name": op, "input_type_shape": inputs}
        return {"cat": "Node", "name": f"{name}_kernel_time", "dur": dur, "args": args}

    conv_in = [{"float": [32, 16, 8, 8]}, {"float": [16, 16, 3, 3]}]
    trace: list[dict[str, Any]] = [{"cat": "Session", "name": "model_run", "dur": 999}]
    for dur in (100, 10, 20, 30):  # the first run is warm-up
        trace.append(event("conv", dur, "Conv", conv_in))
        trace.append({"cat": "Node", "name": "conv_fence_before", "dur": 1})
        trace.append(event("pool", dur // 10, "MaxPool", [{"float": [32, 16, 8, 8]}]))
    nodes = node_times(trace, skip=1, statistic="median")
    assert [(n.name, n.op) for n in nodes] == [
        ("conv_kernel_time", "Conv"),
        ("pool_kernel_time", "MaxPool"),
    ]
    assert nodes[0].ms == pytest.approx(0.020)
    assert nodes[0].kernel == (3, 3) and nodes[0].in_spatial == (8, 8)
    assert nodes[1].kernel is None
    assert node_times(trace, skip=1, statistic="min")[0].ms == pytest.approx(0.010)


def test_aligned_counts_and_calibration_models() -> None:
    assert aligned(21.0, 64, 16) == 16
    assert aligned(3.0, 64, 16) == 16  # at least one multiple
    assert aligned(70.0, 64, 16) == 64
    assert aligned(5.2, 6, 16) == 5  # narrower than the multiple: plain rounding
    assert aligned(4.6, 6, 1) == 5
    groups = find_groups(_resnet(), torch.zeros((1, *SHAPE)))
    for keep in calibration_keeps(groups, 4, 0.2, seed=1, multiple=4):
        for g in groups:
            assert keep[g.name] % 4 == 0 or keep[g.name] == g.channels


def test_onnxruntime_profile_covers_every_layer() -> None:
    pytest.importorskip("onnxruntime")
    model = _resnet()
    backend = get_backend("onnxruntime")
    settings = TimingSettings(backend="onnxruntime", batch_size=2, threads=1, warmup=1, repeats=2)
    nodes = backend.profile_nodes(model, SHAPE, settings, "median")
    per_site = attribute(nodes, trace_layers(model, SHAPE))
    assert per_site is not None
    assert all(ms > 0 for ms in per_site)


def test_a_machine_that_changes_speed_between_samples_does_not_bend_the_table(
    stand_in: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def drifting(self, model, shape, settings, statistic):  # type: ignore[no-untyped-def]
        calls.append(1)
        slow = 1.0 + (len(calls) - 1) // 2 % 3  # 1x, 2x, 3x, ... per (unpruned, sample) pair
        return [replace(n, ms=n.ms * slow) for n in _nodes(model, shape)]

    monkeypatch.setattr(StandIn, "profile_nodes", drifting)
    model = _resnet()
    groups = find_groups(model, torch.zeros((1, *SHAPE)))
    table = LatencyTable.build(
        model, SHAPE, groups, backend=stand_in, grid=3, samples=12, calibrate=0, warmup=0
    )
    rng = random.Random(5)
    backend = get_backend(stand_in)
    from iaprune.cost.lut.fit import prune_to

    for _ in range(3):
        keep = {g.name: aligned(g.channels * rng.uniform(0.2, 1), g.channels, 4) for g in groups}
        truth = backend.measure(prune_to(model, SHAPE, groups, keep), SHAPE, repeats=1).median_ms
        # the table is at the median speed of the unpruned model's profiles (2x here)
        assert table.layer_sum(keep) + table.offset_ms == pytest.approx(
            2 * (truth - 0.05) + table.offset_ms, rel=1e-6
        )
