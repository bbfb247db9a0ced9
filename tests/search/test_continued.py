"""A continued recovery (the finalists' successive halving) equals one recovery of all steps."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import iaprune.search.evaluate as evaluate_module
from iaprune.cost import StaticCostModel
from iaprune.pruning import Pruner
from iaprune.search import CandidateEvaluator


def _evaluator(distill: float) -> CandidateEvaluator:
    """A conv-BN net with dropout (random state matters), 3 training batches, 1 validation."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(32, 4),
    ).eval()
    gen = torch.Generator().manual_seed(1)
    batches = [
        (torch.randn(32, 1, 8, 8, generator=gen), torch.randint(0, 4, (32,), generator=gen))
        for _ in range(4)
    ]
    return CandidateEvaluator(
        Pruner(net, batches[0][0][:1]),
        StaticCostModel(),
        calibration=batches[:2],
        val_batches=batches[3:],
        train_batches=batches[:3],
        lr=0.05,
        distill=distill,
    )


def _half(evaluator: CandidateEvaluator) -> dict[str, int]:
    return {g.name: g.channels // 2 for g in evaluator.pruner.groups}


def _weights(evaluator: CandidateEvaluator) -> dict[str, torch.Tensor]:
    (state,) = evaluator._progress.values()
    return state.model.state_dict()


@pytest.mark.parametrize("distill", [0.0, 1.0])
def test_continued_recovery_equals_one_recovery_of_all_steps(distill: float) -> None:
    rungs = _evaluator(distill)
    keep = _half(rungs)
    assert len(keep) == 2
    first = _weights_after(rungs, keep, 2)
    rungs.continued(keep, 5)
    scored = rungs.continued(keep, 7)  # 2 + 3 + 2 steps; the batches cycle past the third
    at_once = _evaluator(distill)
    direct = at_once.continued(keep, 7)
    continued_weights, direct_weights = _weights(rungs), _weights(at_once)
    assert continued_weights.keys() == direct_weights.keys()
    for name, value in continued_weights.items():
        assert torch.equal(value, direct_weights[name]), name
    assert any(not torch.equal(first[n], v) for n, v in continued_weights.items())
    assert scored.accuracy == direct.accuracy


@pytest.mark.parametrize("distill", [0.0, 1.0])
def test_the_scored_model_equals_the_stateless_scores(
    distill: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model validated after 2 + 5 continued steps is the one ``__call__`` validates."""
    validated: list[dict[str, torch.Tensor]] = []
    real = evaluate_module.evaluate

    def capture(model: nn.Module, *args: Any, **kwargs: Any) -> dict[str, float]:
        validated.append({k: v.clone() for k, v in model.state_dict().items()})
        return real(model, *args, **kwargs)

    monkeypatch.setattr(evaluate_module, "evaluate", capture)
    rungs = _evaluator(distill)
    keep = _half(rungs)
    rungs.continued(keep, 2)
    rungs.continued(keep, 7)
    _evaluator(distill)(keep, steps=7)
    assert len(validated) == 3
    continued, stateless = validated[1], validated[2]
    assert any(not torch.equal(validated[0][k], v) for k, v in continued.items())
    for name, value in continued.items():  # weights and recalibrated BatchNorm statistics
        assert torch.equal(value, stateless[name]), name


def _weights_after(
    evaluator: CandidateEvaluator, keep: dict[str, int], steps: int
) -> dict[str, torch.Tensor]:
    evaluator.continued(keep, steps)
    return {k: v.clone() for k, v in _weights(evaluator).items()}


def test_continuing_leaves_the_global_random_state_alone() -> None:
    evaluator = _evaluator(0.0)
    keep = _half(evaluator)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    evaluator.continued(keep, 4)
    evaluator.continued(keep, 6)
    assert torch.equal(torch.rand(3), expected)


def test_fewer_steps_than_kept_restart_and_forget_releases() -> None:
    evaluator = _evaluator(1.0)
    keep = _half(evaluator)
    evaluator.continued(keep, 6)
    again = evaluator.continued(keep, 3)  # behind the kept model: a fresh recovery
    assert again.accuracy == _evaluator(1.0).continued(keep, 3).accuracy
    assert next(iter(evaluator._progress.values())).steps == 3
    evaluator.forget(keep)
    assert not evaluator._progress
