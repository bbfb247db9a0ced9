"""The contract suites of :mod:`iaprune.testing` over every registered implementation."""

from __future__ import annotations

from iaprune.testing.cost import CostModelSuite
from iaprune.testing.latency import LatencyBackendSuite


class TestLatencyBackendContract(LatencyBackendSuite):
    """Every latency backend (unavailable ones skip with their reason)."""

    skip = {"torch-compile": "compiles for seconds per call; test_backends.py covers it"}


class TestCostModelContract(CostModelSuite):
    """Every cost model: static, measured and predicted."""
