"""The cost-model contract: :class:`CostModelSuite`.

Every cost model registered in :data:`iaprune.cost.COST_MODELS` must, for a tiny model
and a pruned candidate of it:

* be registered under its own :attr:`~iaprune.cost.CostModel.name`;
* report MACs, parameters and activation bytes equal to :func:`iaprune.cost.measure_cost`
  for one sample (the unpruned model with ``keep=None``, a candidate with its ``keep``);
* carry a finite positive latency with an environment exactly when
  :attr:`~iaprune.cost.CostModel.has_latency` says so, so that cost ratios to the
  baseline include latency;
* return a report that survives its JSON round trip;
* leave the model's parameters, buffers and ``training`` flags and the global RNG alone.

:meth:`CostModelSuite.make_cost_model` builds the three built-in models with fast
settings; a plugin's suite subclass overrides it for its own registered model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import pytest
import torch
from torch import nn

from iaprune.cost import (
    COST_MODELS,
    CostModel,
    CostReport,
    LatencyTable,
    MeasuredCostModel,
    PredictedCostModel,
    StaticCostModel,
    count_macs,
    create_cost_model,
    list_cost_models,
    measure_cost,
)
from iaprune.pruning import Pruner
from iaprune.testing._models import assert_unchanged, snapshot, tiny_model
from iaprune.timing import TimingSettings

__all__ = ["CostModelSuite"]

INPUT_SHAPE = (1, 16, 16)
FAST = TimingSettings(warmup=0, repeats=2)


def half_widths(pruner: Pruner) -> dict[str, int]:
    """Every channel group at half its width (at least one filter)."""
    return {g.name: max(1, g.channels // 2) for g in pruner.groups}


class CostModelSuite:
    """Contract tests run once per registered cost model (see the module docstring)."""

    skip: ClassVar[dict[str, str]] = {}
    """Cost model names to leave out of this run, with the reason shown by pytest."""

    def make_cost_model(self, name: str, model: nn.Module, pruner: Pruner) -> CostModel:
        """The cost model ``name`` for ``model`` (whose channel groups ``pruner`` found).

        Built-ins get fast settings (two timed runs; a two-point latency table); any
        other registered name is created without arguments.
        """
        if name == StaticCostModel.name:
            return create_cost_model(name)
        if name == MeasuredCostModel.name:
            return create_cost_model(name, FAST)
        if name == PredictedCostModel.name:
            table = LatencyTable.build(model, INPUT_SHAPE, pruner.groups, FAST, grid=2)
            return create_cost_model(name, table)
        return create_cost_model(name)

    @pytest.fixture(scope="class")
    def model(self) -> nn.Module:
        """The unpruned model every test of one class measures (in eval mode)."""
        return tiny_model().eval()

    @pytest.fixture(scope="class")
    def pruner(self, model: nn.Module) -> Pruner:
        """Channel groups and filter scores of :meth:`model`."""
        return Pruner(model, torch.zeros((1, *INPUT_SHAPE)))

    @pytest.fixture(scope="class", params=list_cost_models())
    def cost_name(self, request: pytest.FixtureRequest) -> str:
        """Each registered cost model's name."""
        name = str(request.param)
        if name in self.skip:
            pytest.skip(self.skip[name])
        return name

    @pytest.fixture(scope="class")
    def cost_model(self, cost_name: str, model: nn.Module, pruner: Pruner) -> CostModel:
        """The cost model under test."""
        return self.make_cost_model(cost_name, model, pruner)

    def check_report(self, cost_model: CostModel, report: CostReport, static: CostReport) -> None:
        """``report`` has ``static``'s static costs and a latency iff the model has one."""
        assert isinstance(report, CostReport)
        assert (report.macs, report.params, report.activation_bytes) == (
            static.macs,
            static.params,
            static.activation_bytes,
        )
        assert report.has_latency == cost_model.has_latency
        if cost_model.has_latency:
            assert report.latency_ms is not None
            assert math.isfinite(report.latency_ms) and report.latency_ms > 0
            assert report.latency_env is not None and "backend" in report.latency_env
        assert CostReport.from_dict(report.to_dict()) == report

    def test_registered_under_its_name(self, cost_name: str, cost_model: CostModel) -> None:
        assert COST_MODELS.get(cost_name).name == cost_name
        assert isinstance(cost_model, CostModel)

    def test_baseline(self, cost_model: CostModel, model: nn.Module) -> None:
        report = cost_model.measure(model, INPUT_SHAPE)
        self.check_report(cost_model, report, measure_cost(model, INPUT_SHAPE))

    def test_candidate(self, cost_model: CostModel, model: nn.Module, pruner: Pruner) -> None:
        keep: Mapping[str, int] = half_widths(pruner)
        pruned = pruner.prune(keep)
        base = cost_model.measure(model, INPUT_SHAPE, None)
        report = cost_model.measure(pruned, INPUT_SHAPE, keep)
        self.check_report(cost_model, report, measure_cost(pruned, INPUT_SHAPE))
        assert report.macs == count_macs(pruned, INPUT_SHAPE) < base.macs
        ratios = report.ratio_to(base)
        assert ratios["macs"] < 1
        assert ("latency" in ratios) == cost_model.has_latency

    def test_full_widths_equal_the_baseline_statics(
        self, cost_model: CostModel, model: nn.Module, pruner: Pruner
    ) -> None:
        full = {g.name: g.channels for g in pruner.groups}
        a = cost_model.measure(model, INPUT_SHAPE, None)
        b = cost_model.measure(model, INPUT_SHAPE, full)
        assert (a.macs, a.params, a.activation_bytes) == (b.macs, b.params, b.activation_bytes)
        if cost_model.uses_keep:  # a prediction from widths: the same widths, the same value
            assert a.latency_ms == b.latency_ms

    def test_leaves_model_and_rng_unchanged(self, cost_model: CostModel) -> None:
        fresh = tiny_model()  # train mode with one BatchNorm in eval mode
        before = snapshot(fresh)
        torch.manual_seed(321)
        expected = torch.rand(3)
        torch.manual_seed(321)
        cost_model.measure(fresh, INPUT_SHAPE)
        assert_unchanged(fresh, before)
        assert torch.equal(torch.rand(3), expected), "the global RNG was consumed"
