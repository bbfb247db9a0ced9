"""The final choice of a search: finalists re-scored with a higher-fidelity score.

A trial's score (BatchNorm recalibration only, by default) is cheap and ranks candidates
only roughly. After the search, the *finalists* (every warm start and the best
``config.rescore`` searched candidates with distinct widths) are scored again by
``final`` evaluator: with ``SearchConfig.final_steps`` > 0 that is a short recovery with
knowledge distillation from the unpruned model, which ranked candidates at one budget
much closer to their fine-tuned accuracy in ``benchmarks/proxy_fidelity.py``.
The best warm start and the best searched finalist are then scored once more with
another seed; the noise is their mean absolute difference, and a heuristic is left only
for a searched candidate whose mean score beats it by more than that noise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from iaprune.config import SearchConfig
from iaprune.errors import one_line
from iaprune.objective import score
from iaprune.search.evaluate import CandidateResult

log = logging.getLogger(__name__)

FINAL_ATTR = "final_scores"
"""Study user attribute caching finalist scores (``"trial:seed" -> value``) for resume."""

Scorer = Callable[..., CandidateResult]


def _feasible(trial: FrozenTrial) -> bool:
    return all(c <= 0 for c in trial.user_attrs.get("constraints", []))


def _key(trial: FrozenTrial) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(trial.user_attrs["keep"].items()))


def finalists(
    study: optuna.Study, config: SearchConfig
) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """Warm starts and the best ``config.rescore`` searched trials, one per distinct width."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    feasible = [t for t in done if _feasible(t)]
    seen: set[tuple[tuple[str, int], ...]] = set()
    warm: list[FrozenTrial] = []
    for t in feasible:
        if "warm_start" in t.user_attrs and _key(t) not in seen:
            warm.append(t)
            seen.add(_key(t))
    searched: list[FrozenTrial] = []
    for t in sorted(feasible, key=lambda t: (-t.values[0], t.number)):
        if len(searched) == config.rescore:
            break
        if "warm_start" not in t.user_attrs and _key(t) not in seen:
            searched.append(t)
            seen.add(_key(t))
    return warm, searched


def _score(
    study: optuna.Study, scorer: Scorer, config: SearchConfig, trial: FrozenTrial, seed: int
) -> float | None:
    """Finalist score of ``trial`` with ``seed`` (cached in the study; None if it fails)."""
    saved = dict(study.user_attrs.get(FINAL_ATTR, {}))
    key = f"{trial.number}:{seed}"
    if key not in saved:
        try:
            r = scorer(trial.user_attrs["keep"], seed=seed)
        except Exception as exc:  # a finalist that fails to re-score is not chosen
            log.warning("re-scoring trial %d failed: %s", trial.number, one_line(exc))
            return None
        saved[key] = score(r.accuracy, r.ratios, r.cost.latency_ms, config.objective)[0]
        study.set_user_attr(FINAL_ATTR, saved)
    return float(saved[key])


def choose(study: optuna.Study, scorer: Scorer, config: SearchConfig) -> dict[str, Any] | None:
    """The final choice among the finalists (see the module docstring), or None.

    With ``config.final_steps == 0`` a finalist's first score is its trial value and
    only the second, noise-measuring score is computed (with other calibration batches).
    Returns the selection record: ``chosen`` trial number, ``reason``, ``noise`` and
    the ``scores`` of every finalist.
    """
    warm, searched = finalists(study, config)
    if len(warm) + len(searched) < 2:
        return None
    first: dict[int, float] = {}
    for t in warm + searched:
        value = _score(study, scorer, config, t, config.seed) if config.final_steps else t.values[0]
        if value is not None:
            first[t.number] = value
    warm = [t for t in warm if t.number in first]
    searched = [t for t in searched if t.number in first]
    if not warm and not searched:
        return None

    def best(trials: list[Any], scores: dict[int, float]) -> Any:
        return max(trials, key=lambda t: (scores[t.number], -t.number))

    # the best warm start and the best searched finalist contend; both are scored again
    contenders = [best(ts, first) for ts in (warm, searched) if ts]
    second = {
        t.number: s
        for t in contenders
        if (s := _score(study, scorer, config, t, config.seed + 1)) is not None
    }
    mean = {n: (first[n] + second[n]) / 2 if n in second else first[n] for n in first}
    noise = sum(abs(first[n] - second[n]) for n in second) / max(1, len(second))
    chosen, reason = contenders[0], "best finalist score"
    if len(contenders) == 2:
        heuristic, candidate = contenders
        beats = mean[candidate.number] - mean[heuristic.number] > noise
        chosen = candidate if beats else heuristic
        reason = (
            f"searched trial beats the best warm start by more than the noise {noise:.4f}"
            if beats
            else f"no searched trial beats warm start {heuristic.user_attrs['warm_start']!r} "
            f"by more than the noise {noise:.4f}"
        )
    return {
        "chosen": chosen.number,
        "reason": reason,
        "noise": noise,
        "final_steps": config.final_steps,
        "scores": {
            str(t.number): {
                "trial": float(t.values[0]),
                "first": first[t.number],
                "second": second.get(t.number),
                "warm_start": t.user_attrs.get("warm_start"),
            }
            for t in warm + searched
        },
    }
