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
  :data:`iaprune.cost.COST_MODELS`;
* :class:`iaprune.testing.importance.ImportanceSuite`: every filter-importance criterion
  in :data:`iaprune.importance.IMPORTANCES`;
* :class:`iaprune.testing.datasets.DatasetSuite`: every dataset in
  :data:`iaprune.data.DATASETS` (a subclass supplies data files in each real format).

Implementations whose optional dependency or device is missing are skipped with the
reason their ``unavailable_error`` gives. The modules import pytest, so they are only for
test code (pytest is a development dependency).
"""
