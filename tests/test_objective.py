"""The objective's two forms."""

from __future__ import annotations

import pytest

from iaprune.config import ObjectiveConfig
from iaprune.errors import IAPruneError
from iaprune.objective import constraint_values, score, weighted_score


def test_weighted_score_subtracts_weighted_ratios() -> None:
    assert weighted_score(0.9, {"macs": 0.4, "params": 0.5}, {"macs": 0.5, "params": 0.2}) == (
        pytest.approx(0.9 - 0.2 - 0.1)
    )


def test_constraints_follow_optuna_sign_convention() -> None:
    values = constraint_values(
        {"macs": 0.3, "params": 0.6}, 2.5, {"macs": 0.4, "params": 0.5, "latency_ms": 2.0}
    )
    assert values == pytest.approx([2.5 - 2.0, 0.3 - 0.4, 0.6 - 0.5])


def test_constrained_value_is_accuracy() -> None:
    value, cons = score(0.8, {"macs": 0.45}, None, ObjectiveConfig(max_macs=0.4))
    assert value == 0.8 and cons == pytest.approx([0.05])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "constrained"}, "needs a budget"),
        ({"kind": "weighted"}, "positive weight"),
        ({"max_macs": 1.5}, "ratio"),
        ({"max_latency_ms": -1.0}, "positive"),
        ({"kind": "pareto-ish", "max_macs": 0.5}, "unknown objective"),
    ],
)
def test_bad_objective_configs(kwargs, message) -> None:
    with pytest.raises(IAPruneError, match=message):
        ObjectiveConfig(**kwargs)
