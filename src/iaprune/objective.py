"""The search objective: validation accuracy joined with resource costs.

Let ``acc`` be validation top-1 of the candidate and ``r_k = cost_k(candidate) /
cost_k(original)`` its cost ratio for k in {macs, params, activation_bytes, latency}.

* **weighted** (maximise): ``score = acc - sum_k w_k * r_k``. With all weights zero
  this is plain accuracy; ``w_macs = 0.5`` trades one point of accuracy for two
  points of MACs ratio.
* **constrained** (maximise ``acc``) subject to ``r_k <= b_k`` for every ratio budget
  and ``latency_ms <= L`` for an absolute latency budget. Constraint values follow
  Optuna's convention: ``c = r_k - b_k``, feasible when every ``c <= 0``. They are
  passed to the sampler through ``constraints_func``; nothing is clamped silently.
"""

from __future__ import annotations

from collections.abc import Mapping

from iaprune.config import ObjectiveConfig


def weighted_score(
    accuracy: float, ratios: Mapping[str, float], weights: Mapping[str, float]
) -> float:
    """``accuracy - sum_k weights[k] * ratios[k]`` over the weights that are non-zero."""
    penalty = 0.0
    for key, weight in weights.items():
        if weight:
            if key not in ratios:
                raise KeyError(f"objective weights {key!r} but no such cost ratio was measured")
            penalty += weight * ratios[key]
    return accuracy - penalty


def constraint_values(
    ratios: Mapping[str, float], latency_ms: float | None, budgets: Mapping[str, float]
) -> list[float]:
    """One value per budget, ``<= 0`` when met (Optuna's ``constraints_func`` convention)."""
    values = []
    for key, bound in sorted(budgets.items()):
        if key == "latency_ms":
            if latency_ms is None:
                raise KeyError("a latency budget needs a measured latency")
            values.append(latency_ms - bound)
        else:
            values.append(ratios[key] - bound)
    return values


def score(
    accuracy: float,
    ratios: Mapping[str, float],
    latency_ms: float | None,
    config: ObjectiveConfig,
) -> tuple[float, list[float]]:
    """Objective value to maximise and constraint values for one candidate."""
    constraints = constraint_values(ratios, latency_ms, config.budgets())
    if config.kind == "weighted":
        return weighted_score(accuracy, ratios, config.weights()), constraints
    return accuracy, constraints
