"""Optuna samplers by name, seeded; ``gp`` (Gaussian-process BO) is the default.

Constraints reach the samplers through :meth:`optuna.trial.Trial.set_constraint`
(Optuna >= 5), which GP and TPE read back from storage; nothing is clamped silently.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

from iaprune._registry import Registry

SamplerFactory = Callable[[int], optuna.samplers.BaseSampler]

SAMPLERS: Registry[SamplerFactory] = Registry("sampler")


@SAMPLERS.register("gp")
def _gp(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed)


@SAMPLERS.register("tpe")
def _tpe(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed)


@SAMPLERS.register("random")
def _random(seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("uniform")
def _uniform(seed: int) -> optuna.samplers.BaseSampler:
    # The uniform baseline enqueues its one bisected trial; the sampler is never consulted.
    return optuna.samplers.RandomSampler(seed=seed)


def create_sampler(name: str, *, seed: int = 0) -> optuna.samplers.BaseSampler:
    """Seeded sampler registered as ``name``."""
    return SAMPLERS.get(name)(seed)


def list_samplers() -> list[str]:
    """Registered sampler names."""
    return SAMPLERS.names()
