"""The Pareto front of trials in an accuracy / cost plane: the one implementation.

The search chooses from it (``objective="pareto"``) and the reports draw and mark it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["TrialPoint", "pareto_front"]


@dataclass(frozen=True)
class TrialPoint:
    """One trial in an accuracy / cost plane."""

    number: int
    accuracy: float
    cost: float
    feasible: bool


def pareto_front(points: Iterable[TrialPoint]) -> list[TrialPoint]:
    """The feasible non-dominated points (accuracy up, cost down), by increasing cost.

    Infeasible (over-budget) points are left out, as the search leaves them out when it
    chooses. A point is dominated when another has cost <= and accuracy >= with one
    strict; identical points are all kept.
    """
    front: list[TrialPoint] = []
    best = -math.inf
    feasible = [p for p in points if p.feasible]
    for p in sorted(feasible, key=lambda p: (p.cost, -p.accuracy, p.number)):
        if p.accuracy > best:
            front.append(p)
            best = p.accuracy
        elif front and (p.cost, p.accuracy) == (front[-1].cost, front[-1].accuracy):
            front.append(p)
    return front
