"""The final choice of a search: finalists re-scored with a higher-fidelity score.

A trial's score (BatchNorm recalibration only, by default) is cheap and ranks candidates
only roughly. After the search, the *finalists* (every warm start and the best
``config.rescore`` searched candidates with distinct widths) are scored again by
``final`` evaluator: with ``SearchConfig.final_steps`` > 0 that is a short recovery with
knowledge distillation from the unpruned model, which ranked candidates at one budget
much closer to their fine-tuned accuracy (``benchmarks/README.md``, "Does the trial score
rank candidates like fine-tuning?").
The best warm start and the best searched finalist are then scored once more with
another seed; the noise is the mean absolute difference of those two pairs of scores (a
rough estimate from two re-scores, kept cheap on purpose). The margin a searched
candidate must beat is that noise, but at least the sampling error of an accuracy measured
on the validation images, ``sqrt(p (1 - p) / n)``: re-scoring noise alone can be 0 (a
distillation score may move by one validation image or none between seeds), and a lead of
a few images then swapped a warm start for a searched allocation that fine-tuned worse
(the figures are in ``benchmarks/README.md``, "torch-pruning's own global allocation as a
warm start, sampling-error floor"). With a single contender there is nothing to compare
and no second score is run.

With ``SearchConfig.final_rungs`` the finalists then go through successive halving: each
rung keeps the best finalists by their latest score and continues their recovery to the
rung's steps (:meth:`CandidateEvaluator.continued`, the same score as one recovery of all
the steps); the contenders, their noise scores and the margin are those of the last rung.
The time limit applies to the first scores only.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from iaprune.config import SearchConfig
from iaprune.errors import one_line
from iaprune.objective import score
from iaprune.progress import counter
from iaprune.search.evaluate import CandidateResult
from iaprune.search.records import FINAL_SCORES_KEY, KEEP_KEY, WARM_START_KEY, meets_budgets

log = logging.getLogger(__name__)

Scorer = Callable[..., CandidateResult]


class LazyScorer:
    """A scorer built by ``make`` on its first call (none when every score is cached)."""

    def __init__(self, make: Callable[[], Scorer]) -> None:
        self._make = make
        self._scorer: Scorer | None = None

    def build(self) -> Scorer:
        """The scorer (built now if it was not yet)."""
        if self._scorer is None:
            self._scorer = self._make()
        return self._scorer

    def __call__(self, keep: Any, **options: Any) -> CandidateResult:
        """Score ``keep`` with the built scorer (``seed``, ``steps``: the scorer's options)."""
        return self.build()(keep, **options)

    def continued(self, keep: Any, steps: int) -> CandidateResult:
        """The built scorer's continued recovery of ``keep`` to ``steps`` steps."""
        scorer: Any = self.build()
        return scorer.continued(keep, steps)

    def forget(self, keep: Any = None) -> None:
        """Release the continued recovery of ``keep`` (None: every one; nothing when the
        scorer was never built)."""
        if self._scorer is not None:
            _forget(self._scorer, keep)


@dataclass(frozen=True)
class Selection:
    """The finalists' choice (stored as :attr:`SearchResult.selection`, via :meth:`to_dict`).

    ``chosen``: the chosen trial's number (None: the search's best trial stands, for
    ``reason``); ``noise``: the mean difference between two scores of the contenders;
    ``margin``: what a searched candidate had to beat (None with fewer than two
    contenders); ``scores``: every finalist's trial score, first score, second (noise)
    score and, with successive halving, ``rungs``: its score at each later rung's steps
    (the second score is then at the steps of the last rung, ``final_steps``);
    ``not_rescored``: searched finalists skipped at the time limit.
    """

    chosen: int | None
    reason: str
    noise: float | None
    margin: float | None
    final_steps: int
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_rescored: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, as in search.json."""
        return asdict(self)


def _key(trial: FrozenTrial) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(trial.user_attrs[KEEP_KEY].items()))


def finalists(
    study: optuna.Study, config: SearchConfig
) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """Warm starts and the best ``config.rescore`` searched trials, one per distinct width."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    feasible_trials = [t for t in done if meets_budgets(t)]
    seen: set[tuple[tuple[str, int], ...]] = set()
    warm: list[FrozenTrial] = []
    for t in feasible_trials:
        if WARM_START_KEY in t.user_attrs and _key(t) not in seen:
            warm.append(t)
            seen.add(_key(t))
    searched: list[FrozenTrial] = []
    for t in sorted(feasible_trials, key=lambda t: (-t.values[0], t.number)):
        if len(searched) == config.rescore:
            break
        if WARM_START_KEY not in t.user_attrs and _key(t) not in seen:
            searched.append(t)
            seen.add(_key(t))
    return warm, searched


def _score(
    study: optuna.Study,
    scorer: Scorer,
    config: SearchConfig,
    trial: FrozenTrial,
    seed: int,
    tag: str,
    steps: int | None = None,
) -> float | None:
    """Finalist score of ``trial`` with ``seed`` (cached in the study; None if it fails).

    ``steps``: recovery steps of a finalist rung, continued from the trial's last rung with
    the run's seed (None: the scorer's own steps).
    """
    saved = dict(study.user_attrs.get(FINAL_SCORES_KEY, {}))
    key = f"{trial.number}:{seed}:{tag}"
    if key not in saved:
        keep = trial.user_attrs[KEEP_KEY]
        try:
            if steps is None:
                r = scorer(keep, seed=seed)
            elif seed == config.seed:
                r = scorer.continued(keep, steps)  # type: ignore[attr-defined]
            else:
                r = scorer(keep, seed=seed, steps=steps)
        except Exception as exc:  # a finalist that fails to re-score is not chosen
            log.warning("re-scoring trial %d failed: %s", trial.number, one_line(exc))
            return None
        saved[key] = score(r.accuracy, r.ratios, r.cost.latency_ms, config.objective)[0]
        study.set_user_attr(FINAL_SCORES_KEY, saved)
    return float(saved[key])


def choose(
    study: optuna.Study,
    scorer: Scorer,
    config: SearchConfig,
    *,
    trial_scores: bool = False,
    val_size: int = 0,
    time_limit: float | None = None,
) -> Selection:
    """The final choice among the finalists (see the module docstring).

    ``trial_scores``: ``scorer`` is the trial evaluator itself, so a finalist's first score
    is its trial value and only the second, noise-measuring score is computed (with other
    calibration batches); also the case when ``config.final_steps == 0``.
    ``val_size``: validation images behind an accuracy score (0: no sampling-error floor).
    ``time_limit``: seconds the searched finalists' first scores may take; a searched
    finalist is not re-scored once the time spent on them plus the mean time of one score
    would pass it (the first estimate is the warm starts' mean). The warm starts are always
    scored and their time does not count (None: no limit).
    Returns the :class:`Selection`.
    """
    try:
        return _choose(study, scorer, config, trial_scores, val_size, time_limit)
    finally:
        _forget(scorer, None)  # the continued recoveries of successive halving


def _choose(
    study: optuna.Study,
    scorer: Scorer,
    config: SearchConfig,
    trial_scores: bool,
    val_size: int,
    time_limit: float | None,
) -> Selection:
    warm, searched = finalists(study, config)
    reuse = trial_scores or not config.final_steps
    if reuse:  # what the trial evaluator runs (the config's trial settings by default)
        steps = getattr(scorer, "finetune_steps", config.finetune_steps)
        distill = getattr(scorer, "distill", config.distill)
    else:
        steps, distill = config.final_steps, config.final_distill
    tag = _tag("trial" if reuse else "final", steps, distill)
    rungs = () if reuse else config.rungs()
    continuing = steps if rungs else None  # the first rung starts the continued recoveries
    if len(warm) + len(searched) < 2:
        return _kept(f"{len(warm) + len(searched)} finalist: nothing to compare", steps)
    first: dict[int, float] = {}
    if not reuse:
        log.info(
            "finalists: %d candidates, %d recovery steps each (distillation %g)",
            len(warm) + len(searched),
            steps,
            distill,
        )
    clock = _SearchedClock(time.perf_counter(), len(warm))
    cut = 0
    with counter("finalists", len(warm) + len(searched)) as bar:
        for i, t in enumerate(warm + searched):
            if not reuse and i >= len(warm) and clock.over(i - len(warm), time_limit):
                cut = len(warm) + len(searched) - i
                log.info(
                    "finalists: time limit %.1f s (%g x the search's time) reached; %d "
                    "searched finalist(s) not re-scored",
                    time_limit,
                    config.final_time,
                    cut,
                )
                break
            value = (
                t.values[0]
                if reuse
                else _score(study, scorer, config, t, config.seed, tag, continuing)
            )
            if value is not None:
                first[t.number] = value
                if not reuse:
                    log.info("finalist trial %d: score %.4f", t.number, value)
            bar.update(i + 1, f"best {max(first.values()):.4f}" if first else "")
    warm = [t for t in warm if t.number in first]
    searched = [t for t in searched if t.number in first]
    if not warm and not searched:
        return _kept("every finalist failed to re-score", steps)
    latest = dict(first)
    later: dict[int, dict[str, float]] = {}
    everyone = warm + searched
    if rungs:
        alive, later, steps = _halve(study, scorer, config, rungs, warm + searched, latest, distill)
        numbers = {t.number for t in alive}
        warm = [t for t in warm if t.number in numbers]
        searched = [t for t in searched if t.number in numbers]
        continuing, tag = steps, _tag("final", steps, distill)

    def best(trials: list[Any], scores: dict[int, float]) -> Any:
        return max(trials, key=lambda t: (scores[t.number], -t.number))

    # the best warm start and the best searched finalist contend; both are scored again
    contenders = [best(ts, latest) for ts in (warm, searched) if ts]
    second: dict[int, float] = {}
    if len(contenders) == 2:
        with counter("finalists: noise", 2) as bar:
            for i, t in enumerate(contenders):
                s = _score(study, scorer, config, t, config.seed + 1, tag, continuing)
                if s is not None:
                    second[t.number] = s
                    log.info("finalist trial %d: second score %.4f", t.number, s)
                bar.update(i + 1)
    mean = {n: (latest[n] + second[n]) / 2 if n in second else latest[n] for n in latest}
    noise = sum(abs(latest[n] - second[n]) for n in second) / len(second) if second else None
    chosen, reason = contenders[0], "best finalist score"
    if len(contenders) == 2:
        heuristic, candidate = contenders
        error = sampling_error(mean[heuristic.number], val_size)
        margin = max(noise or 0.0, error)
        beats = mean[candidate.number] - mean[heuristic.number] > margin
        chosen = candidate if beats else heuristic
        told = f"{margin:.4f} (noise {'unknown' if noise is None else f'{noise:.4f}'}, "
        told += f"validation sampling error {error:.4f})"
        reason = (
            f"searched trial beats the best warm start by more than {told}"
            if beats
            else f"no searched trial beats warm start {heuristic.user_attrs[WARM_START_KEY]!r} "
            f"by more than {told}"
        )
    return Selection(
        chosen=chosen.number,
        reason=reason,
        not_rescored=cut,
        noise=noise,
        margin=margin if len(contenders) == 2 else None,
        final_steps=steps,
        scores={
            str(t.number): {
                "trial": float(t.values[0]),
                "first": first[t.number],
                "second": second.get(t.number),
                "warm_start": t.user_attrs.get(WARM_START_KEY),
                **({"rungs": later[t.number]} if t.number in later else {}),
            }
            for t in everyone
        },
    )


def _halve(
    study: optuna.Study,
    scorer: Scorer,
    config: SearchConfig,
    rungs: tuple[tuple[int, int], ...],
    alive: list[FrozenTrial],
    latest: dict[int, float],
    distill: float,
) -> tuple[list[FrozenTrial], dict[int, dict[str, float]], int]:
    """Successive halving over the scored finalists ``alive`` (``rungs``: ``config.rungs()``).

    Each rung keeps the best finalists by their ``latest`` score (updated in place), the
    best warm start and the best searched finalist always among them, and continues their
    recovery. A rung at which every survivor fails to score ends the halving. Returns the
    finalists of the last rung scored, every later score by trial number and steps, and
    the steps of that rung.
    """
    later: dict[int, dict[str, float]] = {}
    reached = config.final_steps
    for steps, survivors in rungs:
        ranked = sorted(alive, key=lambda t: (-latest[t.number], t.number))
        kept = _survivors(ranked, survivors)
        numbers = {t.number for t in kept}
        for t in ranked:
            if t.number not in numbers:
                _forget(scorer, t.user_attrs[KEEP_KEY])
        log.info("finalists: the best %d continue to %d steps", len(kept), steps)
        tag = _tag("final", steps, distill)
        scored: list[tuple[FrozenTrial, float]] = []
        with counter(f"finalists: {steps} steps", len(kept)) as bar:
            for i, t in enumerate(kept):
                value = _score(study, scorer, config, t, config.seed, tag, steps)
                if value is not None:
                    scored.append((t, value))
                    log.info("finalist trial %d: score %.4f at %d steps", t.number, value, steps)
                bar.update(i + 1, f"best {max(v for _, v in scored):.4f}" if scored else "")
        if not scored:
            log.warning("finalists: no survivor scored at %d steps; the last rung decides", steps)
            break
        for t, value in scored:
            latest[t.number] = value
            later.setdefault(t.number, {})[str(steps)] = value
        alive, reached = [t for t, _ in scored], steps
    return alive, later, reached


def _survivors(ranked: list[FrozenTrial], n: int) -> list[FrozenTrial]:
    """The best ``n`` of ``ranked``, with the best warm start and the best searched finalist
    among them (each replaces the last place when the best ``n`` hold none of its kind)."""
    kept = ranked[:n]
    for warm in (True, False):
        if not any((WARM_START_KEY in t.user_attrs) == warm for t in kept):
            best = next((t for t in ranked if (WARM_START_KEY in t.user_attrs) == warm), None)
            if best is not None:
                kept = [*kept[:-1], best]
    return kept


def _tag(kind: str, steps: int, distill: float) -> str:
    """The cache tag of a finalist score (``trial`` or ``final`` scorer, its recovery)."""
    return f"{kind}:{steps}:{distill:g}"


def _forget(scorer: Scorer, keep: Any) -> None:
    """Release the scorer's continued recovery of ``keep`` (None: all), if it keeps any."""
    forget = getattr(scorer, "forget", None)
    if forget is not None:
        forget(keep)


class _SearchedClock:
    """Time spent on the searched finalists, which the warm starts' scores precede."""

    def __init__(self, started: float, warm: int) -> None:
        self.started, self.warm = started, warm
        self.searched: float | None = None  # when the first searched finalist began
        self.estimate = 0.0  # the warm starts' mean time per score

    def over(self, done: int, limit: float | None) -> bool:
        """Whether one more score (at the mean time so far) would pass ``limit``.

        ``done``: searched finalists scored so far; the first call starts the clock.
        """
        now = time.perf_counter()
        if self.searched is None:
            self.searched = now
            self.estimate = (now - self.started) / self.warm if self.warm else 0.0
        if limit is None:
            return False
        spent = now - self.searched
        return spent + (spent / done if done else self.estimate) > limit


def sampling_error(accuracy: float, n: int) -> float:
    """Standard error of an accuracy ``accuracy`` measured on ``n`` images (0 if n is 0)."""
    if n <= 0:
        return 0.0
    p = min(1.0, max(0.0, accuracy))
    return math.sqrt(p * (1 - p) / n)


def _kept(reason: str, steps: int) -> Selection:
    """The selection when the search's best trial stands."""
    return Selection(None, reason, None, None, steps)
