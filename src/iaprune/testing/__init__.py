"""Contract test suites every implementation of an extension point must pass.

As Optuna's ``optuna.testing`` sampler suite: each suite is a pytest test class,
parametrised over every registered implementation; a project's tests (or a plugin's)
subclass it to run it::

    from iaprune.testing.latency import LatencyBackendSuite

    class TestLatencyBackends(LatencyBackendSuite):
        pass

* :class:`iaprune.testing.latency.LatencyBackendSuite`: every latency backend in
  :data:`iaprune.cost.latency.BACKENDS`;
* :class:`iaprune.testing.cost.CostModelSuite`: every cost model in
  :data:`iaprune.cost.COST_MODELS`.

Implementations whose optional dependency or device is missing are skipped with the
reason their ``unavailable_error`` gives. The modules import pytest, so they are only for
test code (pytest is a development dependency).
"""
