"""The ``local`` search space: a trust region of multiplicative moves around the best heuristic.

On the tied ``budget`` space the sampler places its 5-6 shared dimensions far from the
heuristics, and its picks rarely beat them. The ``local`` space instead searches *around*
the best warm start, one dimension per channel group, as trust-region Bayesian
optimisation does (TuRBO, Eriksson et al., NeurIPS 2019; LeGR and NetAdapt make local
moves too):

* the warm starts (uniform and the heuristics of
  :data:`~iaprune.search.heuristics.HEURISTICS`) are scored first (:func:`anchor_on_best`);
  the feasible one with the best score is the **anchor** ``s`` (each group's kept share
  of its width);
* a candidate is one parameter ``u_g`` in ``[-1, 1]`` per group; group ``g`` is allocated
  ``s_g * exp(radius * u_g)`` (with the default radius, between half and twice the
  anchor's share) and the allocation is projected onto the budget like every candidate
  of the ``budget`` space (:class:`~iaprune.search.projection.BudgetProjection`), so
  ``u = 0`` is the anchor itself;
* the warm starts enter the study at their exact widths with the parameters nearest to
  them, so the Gaussian process learns from them, and their scores are not computed twice.

The anchor is stored in the study (:data:`ANCHOR_ATTR`): a resumed search and every
worker read it back (:func:`restore_anchor`) instead of choosing again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from iaprune.search.projection import AllocationSpace

__all__ = [
    "ANCHOR_ATTR",
    "RADIUS",
    "WARM_RESULTS_ATTR",
    "LocalSpace",
    "anchor_on_best",
    "restore_anchor",
]

log = logging.getLogger(__name__)

RADIUS = math.log(2.0)
"""Default trust-region radius in log-share: moves between half and twice the anchor."""

ANCHOR_ATTR = "local_anchor"
"""Study user attribute: the anchor's name and widths."""

WARM_RESULTS_ATTR = "warm_results"
"""Study user attribute: the warm starts' scores, kept so a resumed search reuses them."""

Evaluate = Callable[[Mapping[str, int]], dict[str, Any]]
"""Scores a warm start's widths: ``{"value", "feasible", ...}`` (JSON-serialisable)."""


@dataclass
class LocalSpace(AllocationSpace):
    """One parameter per group, a multiplicative move from the anchor, projected on the budget.

    Until an anchor is set (:meth:`set_anchor`) the anchor is the uniform allocation.
    """

    radius: float = RADIUS
    anchor: dict[str, float] = field(default_factory=dict)

    def param_name(self, cluster: str) -> str:
        """Optuna parameter name of a group's move."""
        return f"m:{cluster}"

    def set_anchor(self, keep: Mapping[str, int]) -> None:
        """Centre the trust region on the widths ``keep`` (each group's kept share)."""
        self.anchor = {g.name: keep.get(g.name, g.channels) / g.channels for g in self.space.groups}

    def _share(self, name: str) -> float:
        return self.anchor.get(name, 1.0)

    def keep_for(self, params: Mapping[str, float]) -> dict[str, int]:
        """Kept counts of moves ``{"m:group": u}``, projected onto the budget."""
        alloc = {
            name: self._share(name) * math.exp(self.radius * float(params[self.param_name(c)]))
            for c, names in self.clusters.items()
            for name in names
        }
        return self.projection.project(alloc)

    def suggest(self, trial: optuna.Trial) -> dict[str, int]:
        """Sample one move per group in ``[-1, 1]`` and return kept counts on the budget."""
        params = {
            self.param_name(c): trial.suggest_float(self.param_name(c), -1.0, 1.0)
            for c in self.clusters
        }
        return self.keep_for(params)

    def params_for_keep(self, keep: Mapping[str, int]) -> dict[str, float]:
        """The moves nearest to ``keep`` (clipped to the trust region)."""
        params = {}
        for c, names in self.clusters.items():
            g = next(g for g in self.space.groups if g.name == names[0])
            share = keep.get(g.name, g.channels) / g.channels
            u = math.log(share / self._share(g.name)) / self.radius
            params[self.param_name(c)] = max(-1.0, min(1.0, u))
        return params

    def uniform_params(self) -> dict[str, float]:
        """The anchor itself (``u = 0``); the uniform allocation before an anchor is set."""
        return {self.param_name(c): 0.0 for c in self.clusters}


def anchor_on_best(
    study: optuna.Study,
    space: LocalSpace,
    starts: Mapping[str, Any],
    evaluate: Evaluate,
) -> dict[str, dict[str, Any]]:
    """Score every warm start (once per study), centre ``space`` on the best feasible one.

    ``starts`` are ``{name: WarmStart}``; ``evaluate(keep)`` returns a JSON-serialisable
    record with at least ``value`` (higher is better) and ``feasible``. Records are saved
    in the study as they finish, so a resumed search does not score a start again.
    Returns the records by name; the anchor is stored in the study (:data:`ANCHOR_ATTR`).
    """
    results: dict[str, dict[str, Any]] = dict(study.user_attrs.get(WARM_RESULTS_ATTR, {}))
    for name, start in starts.items():
        if name not in results:
            log.info("local search: scoring warm start %r", name)
            results[name] = evaluate(start.keep)
            study.set_user_attr(WARM_RESULTS_ATTR, results)
    feasible = [n for n in starts if results[n].get("feasible")]
    best = max(feasible or list(starts), key=lambda n: float(results[n]["value"]), default=None)
    if best is not None:
        space.set_anchor(starts[best].keep)
        study.set_user_attr(ANCHOR_ATTR, {"name": best, "keep": dict(starts[best].keep)})
        log.info(
            "local search: centred on warm start %r (score %.4f)", best, results[best]["value"]
        )
    return results


def restore_anchor(study: optuna.Study, space: LocalSpace) -> None:
    """Centre ``space`` on the anchor stored in ``study`` (a resumed search, a worker)."""
    stored = study.user_attrs.get(ANCHOR_ATTR)
    if stored:
        space.set_anchor({k: int(v) for k, v in stored["keep"].items()})
