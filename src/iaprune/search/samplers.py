"""Optuna samplers by name, seeded; ``gp`` (Gaussian-process BO) is the default."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import optuna

from iaprune._registry import Registry

ConstraintsFunc = Callable[[optuna.trial.FrozenTrial], Sequence[float]]
SamplerFactory = Callable[[int, ConstraintsFunc | None], optuna.samplers.BaseSampler]

SAMPLERS: Registry[SamplerFactory] = Registry("sampler")


@SAMPLERS.register("gp")
def _gp(seed: int, constraints: ConstraintsFunc | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, constraints_func=constraints)


@SAMPLERS.register("tpe")
def _tpe(seed: int, constraints: ConstraintsFunc | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, constraints_func=constraints)


@SAMPLERS.register("random")
def _random(seed: int, constraints: ConstraintsFunc | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("uniform")
def _uniform(seed: int, constraints: ConstraintsFunc | None) -> optuna.samplers.BaseSampler:
    # The uniform baseline enqueues its one bisected trial; the sampler is never consulted.
    return optuna.samplers.RandomSampler(seed=seed)


def create_sampler(
    name: str, *, seed: int = 0, constraints: ConstraintsFunc | None = None
) -> optuna.samplers.BaseSampler:
    """Seeded sampler registered as ``name``; ``constraints`` feeds Optuna's constraint support."""
    return SAMPLERS.get(name)(seed, constraints)


def list_samplers() -> list[str]:
    """Registered sampler names."""
    return SAMPLERS.names()


def constraints_from_attrs(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
    """Constraint values stored by the objective in ``trial.user_attrs['constraints']``."""
    return trial.user_attrs.get("constraints", [])
