"""Bayesian optimisation over per-layer widths."""

from iaprune.search.builder import WarmStart, make_space, warm_starts, width_space
from iaprune.search.evaluate import CandidateEvaluator, CandidateResult
from iaprune.search.heuristics import (
    HEURISTICS,
    inner_allocation,
    knapsack_allocation,
    ranking_allocation,
)
from iaprune.search.latency_fit import LatencyFit, ab_measure, fit_measured, latency_key
from iaprune.search.local import LocalSpace
from iaprune.search.projection import AllocationSpace, BudgetProjection, latency_predictors
from iaprune.search.proxy import RetainedImportanceEvaluator, retained_importance
from iaprune.search.records import SearchResult, TrialRecord
from iaprune.search.samplers import create_sampler, list_samplers
from iaprune.search.space import SearchSpace
from iaprune.search.storage import open_storage
from iaprune.search.study import join_search, run_search
from iaprune.search.uniform import check_reachable, uniform_keep, uniform_ratio
from iaprune.search.workers import work

__all__ = [
    "HEURISTICS",
    "inner_allocation",
    "ranking_allocation",
    "AllocationSpace",
    "LocalSpace",
    "BudgetProjection",
    "CandidateEvaluator",
    "CandidateResult",
    "LatencyFit",
    "RetainedImportanceEvaluator",
    "SearchResult",
    "SearchSpace",
    "TrialRecord",
    "WarmStart",
    "ab_measure",
    "check_reachable",
    "create_sampler",
    "fit_measured",
    "join_search",
    "knapsack_allocation",
    "latency_key",
    "latency_predictors",
    "list_samplers",
    "make_space",
    "open_storage",
    "retained_importance",
    "run_search",
    "uniform_keep",
    "uniform_ratio",
    "warm_starts",
    "width_space",
    "work",
]
