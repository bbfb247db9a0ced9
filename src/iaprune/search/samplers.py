"""Optuna samplers by name, seeded; ``gp`` (Gaussian-process BO) is the default.

Constraints reach the samplers through :meth:`optuna.trial.Trial.set_constraint`
(Optuna >= 5), which GP and TPE read back from storage; nothing is clamped silently.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

from iaprune._registry import Registry

SamplerFactory = Callable[[int, int], optuna.samplers.BaseSampler]

SAMPLERS: Registry[SamplerFactory] = Registry("sampler")
"""Optuna sampler factories by name (``--sampler``): ``factory(seed, startup_trials)``."""


@SAMPLERS.register("gp")
def _gp(seed: int, startup: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)


@SAMPLERS.register("tpe")
def _tpe(seed: int, startup: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


@SAMPLERS.register("random")
def _random(seed: int, startup: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("uniform")
def _uniform(seed: int, startup: int) -> optuna.samplers.BaseSampler:
    # The uniform baseline enqueues its one bisected trial; the sampler is never consulted.
    return optuna.samplers.RandomSampler(seed=seed)


def default_startup_trials(trials: int) -> int:
    """Random start-up trials before a model-based sampler takes over: trials / 4, 2 to 10."""
    return max(2, min(10, trials // 4))


def create_sampler(
    name: str, *, seed: int = 0, startup_trials: int = 10
) -> optuna.samplers.BaseSampler:
    """Seeded sampler registered as ``name``; ``startup_trials`` random trials first (gp, tpe).

    Enqueued warm-start trials count towards the start-up trials.
    """
    return SAMPLERS.get(name)(seed, startup_trials)


def list_samplers() -> list[str]:
    """Registered sampler names."""
    return SAMPLERS.names()
