"""A training-free candidate evaluator: retained filter importance, costs memoised.

:class:`RetainedImportanceEvaluator` scores a configuration by the share of L1 (or any
criterion's) filter importance its kept filters retain, averaged over channel groups,
instead of validating a pruned model. It needs no data, so benchmarks of the search
machinery (latency-aware vs MACs-only search on random-weight models) and quick
explorations run it; it is a proxy for keeping channels, not for accuracy. Costs are
memoised per configuration: bisection and GP samplers revisit rounded widths, and a
deterministic cost model (static, predicted) gives the same answer every time.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

import torch

from iaprune.cost import CostModel, CostReport
from iaprune.pruning.surgery import Pruner
from iaprune.search.evaluate import CandidateEvaluator, CandidateResult, keep_key

__all__ = ["RetainedImportanceEvaluator", "retained_importance"]


def retained_importance(pruner: Pruner, keep: Mapping[str, int]) -> float:
    """Mean over groups of the importance share the ``keep[g]`` top-scoring filters hold.

    Groups missing from ``keep`` are at full width (share 1).
    """
    shares = []
    for group in pruner.groups:
        scores = pruner.scores[group.name]
        k = int(keep.get(group.name, group.channels))
        total = float(scores.sum())
        shares.append(float(torch.topk(scores, k).values.sum()) / total if total > 0 else 1.0)
    return statistics.fmean(shares)


class RetainedImportanceEvaluator(CandidateEvaluator):
    """A :class:`CandidateEvaluator` whose accuracy is :func:`retained_importance`.

    No data, no BN recalibration; costs from ``cost_model`` are computed once per
    configuration (:attr:`cost_calls` counts the real computations).
    """

    def __init__(self, pruner: Pruner, cost_model: CostModel) -> None:
        super().__init__(pruner, cost_model, calibration=(), val_batches=())
        self._memo: dict[tuple[tuple[str, int], ...], tuple[CostReport, dict[str, float]]] = {}
        self.cost_calls = 0

    def costs(self, keep: Mapping[str, int]) -> tuple[CostReport, dict[str, float]]:
        """Costs and cost ratios of ``keep``, computed once per configuration."""
        key = keep_key(keep)
        if key not in self._memo:
            self.cost_calls += 1
            self._memo[key] = super().costs(keep)
        return self._memo[key]

    def __call__(
        self, keep: Mapping[str, int], *, seed: int | None = None, steps: int | None = None
    ) -> CandidateResult:
        """Proxy score and (memoised) costs of ``keep``; ``seed`` and ``steps`` are ignored."""
        cost, ratios = self.costs(keep)
        return CandidateResult(retained_importance(self.pruner, keep), cost, ratios)
