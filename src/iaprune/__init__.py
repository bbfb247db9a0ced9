"""iaprune: inference-aware CNN filter pruning with Bayesian optimisation.

Typical use::

    import iaprune
    report = iaprune.run_prune("runs/demo", iaprune.RunConfig())      # the whole pipeline
    model = iaprune.load_pruned("runs/demo")                          # reload the result

or, on any ``nn.Module``::

    pruner = iaprune.Pruner(model, example_input)                     # groups + filter scores
    smaller = pruner.prune({g.name: g.channels // 2 for g in pruner.groups})

Names are imported lazily so ``import iaprune`` (and the CLI's start-up) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CostConfig": "iaprune.config",
    "FinetuneConfig": "iaprune.config",
    "ObjectiveConfig": "iaprune.config",
    "SearchConfig": "iaprune.config",
    "CostModel": "iaprune.cost",
    "CostReport": "iaprune.cost",
    "TimingSettings": "iaprune.timing",
    "create_cost_model": "iaprune.cost",
    "measure_cost": "iaprune.cost",
    "IAPruneError": "iaprune.errors",
    "RunConfig": "iaprune.config",
    "Session": "iaprune.session",
    "run_prune": "iaprune.pipeline",
    "load_pruned": "iaprune.pipeline",
    "ChannelGroup": "iaprune.pruning",
    "Pruner": "iaprune.pruning",
    "PruningSpec": "iaprune.pruning",
    "apply_spec": "iaprune.pruning",
    "find_groups": "iaprune.pruning",
    "CandidateEvaluator": "iaprune.search",
    "SearchResult": "iaprune.search",
    "SearchSpace": "iaprune.search",
    "run_search": "iaprune.search",
    "create_model": "iaprune.models",
    "list_models": "iaprune.models",
    "create_dataset": "iaprune.data",
    "list_datasets": "iaprune.data",
}

__all__ = sorted(_EXPORTS)


def _version() -> str:
    """The installed distribution's version (read on first use: importlib.metadata is slow)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("iaprune")
    except PackageNotFoundError:  # running from a source tree without installation
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return _version()
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'iaprune' has no attribute {name!r}")
