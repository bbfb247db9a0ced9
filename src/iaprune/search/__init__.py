"""Bayesian optimisation over per-group keep-ratios."""

from iaprune.search.evaluate import CandidateEvaluator, CandidateResult
from iaprune.search.samplers import create_sampler, list_samplers
from iaprune.search.space import SearchSpace
from iaprune.search.study import SearchResult, run_search

__all__ = [
    "CandidateEvaluator",
    "CandidateResult",
    "SearchResult",
    "SearchSpace",
    "create_sampler",
    "list_samplers",
    "run_search",
]
