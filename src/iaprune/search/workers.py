"""Several processes on one study: heartbeats, retried stale trials, an exact trial count.

Any number of processes (on one machine or many) run trials of one Optuna study
through its storage (SQLite for local workers, PostgreSQL/MySQL across machines).
Nothing here schedules work: Optuna's storage hands out trials, its heartbeat
(``heartbeat_interval``, ``grace_period``) finds the trial of a worker that died (e.g.
``kill -9``), marks it failed and re-enqueues it with its parameters
(:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`), so another worker runs it.

Roles. The process that *creates* the study (the leader) stores the run's definition
in the study's user attributes, enqueues the warm starts once, marks the study
``ready`` and, after the trials, makes the final choice. Every other process joins: it
waits until the study is ready, refuses a study whose definition differs from its own,
and only runs trials.

Counting. ``trials`` is the number of trials that *count*: complete ones and ones whose
evaluation raised (user attribute ``error``). A trial failed by the heartbeat does not
count (its retry does). A worker starts a trial only while counted + running trials are
fewer than ``trials``; when two workers race for the last slot, the trial whose number
comes later finds ``trials`` counted-or-live trials before it and is pruned as
``surplus`` without being evaluated. So the study ends with exactly ``trials`` counted
trials, and every worker returns only when no trial is running any more.

Outages. While the database is unreachable every call is retried by the storage
(:mod:`iaprune.search.storage`); a trial whose heartbeat lapsed meanwhile is failed and
retried as above, and the worker that was running it moves on (:func:`work`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from iaprune.errors import IAPruneError, one_line
from iaprune.parallel import refuse_other_run
from iaprune.progress import counter
from iaprune.search.records import ERROR_KEY, SURPLUS_KEY, WORKER_KEY
from iaprune.search.storage import StorageUnavailable, lost_storage, open_storage

log = logging.getLogger(__name__)

READY_ATTR = "iaprune_ready"
DEFINITION_ATTR = "iaprune_run"
TRIALS_ATTR = "iaprune_trials"
JOINED_PREFIX = "iaprune_joined:"
"""User attribute ``iaprune_joined:<host:pid>`` = the time a worker joined."""

Objective = Callable[[optuna.Trial], Any]


def worker_id() -> str:
    """``host:pid`` of this process (recorded on every trial it runs)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def counts(trial: FrozenTrial) -> bool:
    """Whether ``trial`` uses up one of the requested trials (finished, or raised)."""
    if trial.state == TrialState.COMPLETE:
        return True
    return trial.state == TrialState.FAIL and ERROR_KEY in trial.user_attrs


def _live(trial: FrozenTrial) -> bool:
    return trial.state in (TrialState.RUNNING, TrialState.WAITING)


def fail_stale(study: optuna.Study) -> None:
    """Fail (and re-enqueue) trials whose worker stopped sending heartbeats."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def fail_orphans(study: optuna.Study) -> None:
    """Fail RUNNING trials no worker of this version ran (left by an older, crashed run).

    Trials of this version carry the ``worker`` attribute and are covered by heartbeats.
    """
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if WORKER_KEY not in trial.user_attrs:
            try:
                study.tell(trial.number, state=TrialState.FAIL)
            except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
                continue  # finished meanwhile
            log.warning("trial %d was left running by a crash: marked failed", trial.number)


def in_budget(trials: list[FrozenTrial], number: int, n_trials: int) -> bool:
    """Whether trial ``number`` fits: fewer than ``n_trials`` counted or live trials before it."""
    before = sum(1 for t in trials if t.number < number and (counts(t) or _live(t)))
    return before < n_trials


class _FailedTrialFilter(logging.Filter):
    """Drops Optuna's records of a trial whose objective raised (traceback, value None).

    :class:`Guarded` has logged the cause on one line at WARNING and the traceback at
    DEBUG; Optuna would repeat both, with the traceback, for every failed trial.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is not None:  # the objective raised: Guarded logged it
            return False
        return not record.getMessage().endswith(" failed with value None.")


FAILED_TRIAL_FILTER = _FailedTrialFilter()


class Guarded:
    """``objective`` that first prunes a surplus trial and records the worker's id.

    A trial whose objective raises fails that trial only: the error goes into its
    ``error`` attribute and the log as one line (the traceback at DEBUG). An unreachable
    storage, or a trial another process failed meanwhile (its heartbeat lapsed), is not
    the candidate's error: it is raised as it is, for :func:`work`. ``number`` is the
    trial being run (or last run).
    """

    def __init__(self, study: optuna.Study, objective: Objective, n_trials: int) -> None:
        self.study = study
        self.objective = objective
        self.n_trials = n_trials
        self.number: int | None = None

    def __call__(self, trial: optuna.Trial) -> Any:
        self.number = trial.number
        if not in_budget(self.study.get_trials(deepcopy=False), trial.number, self.n_trials):
            trial.set_user_attr(SURPLUS_KEY, True)
            raise optuna.TrialPruned("surplus: the study already has its trials")
        trial.set_user_attr(WORKER_KEY, worker_id())
        try:
            return self.objective(trial)
        except (StorageUnavailable, optuna.exceptions.UpdateFinishedTrialError):
            raise
        except Exception as exc:  # one bad candidate fails its trial, not the search
            trial.set_user_attr(ERROR_KEY, one_line(exc))
            log.warning("trial %d failed: %s", trial.number, one_line(exc))
            log.debug("trial %d failed", trial.number, exc_info=True)
            raise


def work(study: optuna.Study, objective: Objective, n_trials: int, *, poll: float = 1.0) -> int:
    """Run trials until ``n_trials`` count and none is running; returns how many ran here.

    While the last trials run in other workers this one waits (``poll`` seconds) and
    checks their heartbeats, so a trial whose worker died is failed, retried and run here.
    A trial this worker ran but another process failed meanwhile (its heartbeat lapsed
    while the storage was unreachable) is left to its retry. A storage that stays
    unreachable raises :class:`~iaprune.search.storage.StorageUnavailable`.
    """
    ran = 0
    run = Guarded(study, objective, n_trials)
    logging.getLogger("optuna.study._optimize").addFilter(FAILED_TRIAL_FILTER)
    with counter("search", n_trials) as bar:
        while True:
            fail_stale(study)
            trials = study.get_trials(deepcopy=False)
            done = sum(1 for t in trials if counts(t))
            running = sum(1 for t in trials if t.state == TrialState.RUNNING)
            bar.update(done, best_so_far(trials))
            if done >= n_trials and not running:
                return ran
            if done + running >= n_trials:
                time.sleep(poll)
                continue
            run.number = None
            try:
                study.optimize(run, n_trials=1, catch=(Exception,))
            except Exception as exc:  # raised while Optuna recorded the trial's outcome
                _trial_lost(study, run.number, exc)
                continue
            ran += 1


def _trial_lost(study: optuna.Study, number: int | None, exc: Exception) -> None:
    """Log trial ``number`` as lost if another process failed it; else raise ``exc``.

    Raises:
        StorageUnavailable: behind ``exc`` (Optuna may have replaced it with its own error).
    """
    lost = lost_storage(exc)
    if lost is not None:
        raise lost from None
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is None or trial.state != TrialState.FAIL or ERROR_KEY in trial.user_attrs:
        raise exc
    log.warning(
        "trial %d was failed by a heartbeat check while this worker ran it (the storage was "
        "unreachable); its retry evaluates it again",
        trial.number,
    )


def best_so_far(trials: list[FrozenTrial]) -> str:
    """``best 0.9312 (trial 7)``: the best complete trial's first value so far, if any."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    if not complete:
        return ""
    best = max(complete, key=lambda t: t.values[0])
    return f"best {best.values[0]:.4f} (trial {best.number})"


def create_or_join(
    storage: optuna.storages.BaseStorage,
    name: str,
    *,
    directions: list[StudyDirection],
    sampler: optuna.samplers.BaseSampler,
    resume: bool,
) -> tuple[optuna.Study, bool]:
    """The study ``name`` and whether this process created it (the leader).

    Creation is atomic in the storage, so of several processes starting at once exactly
    one creates the study. ``resume`` makes this process the leader of an existing study.
    """
    try:
        study = optuna.create_study(
            storage=storage, sampler=sampler, study_name=name, directions=directions
        )
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        return study, resume


def mark_ready(study: optuna.Study, definition: Mapping[str, Any], n_trials: int) -> None:
    """Store the run's definition and trial count, and let joining workers start.

    Besides the whole definition (what workers compare), every entry is stored on its own
    (:func:`readable_definition`), because optuna-dashboard cuts a user attribute's text at
    1,024 characters and the whole definition is longer.
    """
    study.set_user_attr(DEFINITION_ATTR, dict(definition))
    for key, value in readable_definition(definition).items():
        study.set_user_attr(key, value)
    study.set_user_attr(TRIALS_ATTR, n_trials)
    study.set_user_attr(READY_ATTR, time.time())


DASHBOARD_LIMIT = 1000
"""Characters of a user attribute's JSON that optuna-dashboard shows whole (it cuts at 1,024)."""


def readable_definition(definition: Mapping[str, Any]) -> dict[str, str]:
    """``{"iaprune_run.KEY": JSON}`` per entry, split in numbered parts above the limit."""
    out: dict[str, str] = {}
    for key, value in definition.items():
        text = json.dumps(value, sort_keys=True)
        name = f"{DEFINITION_ATTR}.{key}"
        if len(text) <= DASHBOARD_LIMIT:
            out[name] = text
            continue
        for i in range(0, len(text), DASHBOARD_LIMIT):
            out[f"{name}.{i // DASHBOARD_LIMIT}"] = text[i : i + DASHBOARD_LIMIT]
    return out


def announce(study: optuna.Study) -> None:
    """Record that this process joined the study (what :func:`wait_for_workers` counts)."""
    study.set_user_attr(JOINED_PREFIX + worker_id(), time.time())


def wait_for_workers(study: optuna.Study, n: int, *, timeout: float, poll: float = 0.5) -> int:
    """Wait until ``n`` workers joined since the study was made ready (or ``timeout`` s).

    ``--workers N`` starts N - 1 processes next to the leader; without this wait the leader
    could run every trial of a short search before they have started. Returns how many
    joined; fewer than ``n`` after the timeout is logged, and the search goes on.
    """
    deadline = time.monotonic() + timeout
    while True:
        attrs = study.user_attrs
        since = float(attrs.get(READY_ATTR) or 0.0)
        joined = sum(
            1 for k, v in attrs.items() if k.startswith(JOINED_PREFIX) and float(v) >= since
        )
        if joined >= n or time.monotonic() > deadline:
            break
        time.sleep(poll)
    if joined < n:
        log.warning(
            "%d of %d workers joined within %g s; going on without them", joined, n, timeout
        )
    return joined


def wait_ready(study: optuna.Study, *, timeout: float = 600.0, poll: float = 1.0) -> None:
    """Wait until the leader has set up the study (warm starts enqueued)."""
    deadline = time.monotonic() + timeout
    while not study.user_attrs.get(READY_ATTR):
        if time.monotonic() > deadline:
            raise IAPruneError(
                f"study {study.study_name!r} was not set up by its creator within {timeout:g} s; "
                "is the first worker still running?"
            )
        time.sleep(poll)


def check_storage(
    url: str, study_name: str, *, resume: bool, definition: dict[str, Any] | None = None
) -> None:
    """Open an Optuna storage URL; refuse an existing study unless resuming or joining it.

    A study that stores the same run ``definition`` (the same command started on another
    machine) is joined as a worker; any other existing study needs ``--resume``.
    """
    storage = open_storage(url, heartbeat=1)
    url = storage.url  # the password masked
    try:
        studies = {s.study_name: s for s in storage.get_all_studies()}
    except Exception as exc:  # SQLAlchemy/Optuna raise many types for a bad URL or file
        raise IAPruneError(f"cannot open study storage {url}: {one_line(exc, 200)}") from exc
    if study_name not in studies or resume:
        return
    theirs = optuna.load_study(study_name=study_name, storage=storage).user_attrs
    if definition is None or DEFINITION_ATTR not in theirs:
        raise IAPruneError(f"study {study_name!r} already exists in {url}; use --resume")
    refuse_other_run(study_name, url, definition, theirs[DEFINITION_ATTR], baseline=False)
