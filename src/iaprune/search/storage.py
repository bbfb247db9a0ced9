"""The study's storage: opened once, retried while its database is unreachable.

A search runs for hours against one database, and a restart of that server (maintenance,
a fail-over) must not end it. :func:`open_storage` returns a :class:`RetryingStorage`:
every call Optuna or iaprune makes to the storage is retried with exponential backoff
(1 s, 2 s, ... at most :data:`MAX_WAIT`) while the database is unreachable (a connection
error, SQLite's "database is locked"), for at most ``retry`` seconds per outage, counted
from the first failed call of any thread. Retries are logged on one line each; a
database that does not come back in time raises :class:`StorageUnavailable`, a one-line
error (exit code 2). Any other error (a bad value, a finished trial) is raised at once.
A trial whose heartbeat lapsed during the outage is failed and retried by the heartbeat
check as for a killed worker (see :mod:`iaprune.search.workers`).

Opening fails fast: a bad URL, a wrong password or a server that is down when a command
starts is a one-line error before any work.

A password in the URL is never printed: messages show :func:`iaprune.config.masked_url`,
and a URL whose password is masked (read back from config.json) connects without one, so
libpq takes it from ``PGPASSWORD`` or ``~/.pgpass``.

Optuna runs heartbeats only for a storage that is an instance of its heartbeat base class,
which Optuna does not export publicly (``optuna.storages._heartbeat.BaseHeartbeat``). The
wrapper must inherit it, so it is the one private Optuna name iaprune imports; Optuna is
pinned below 6 and ``tests/search/test_storage.py`` fails when either contract changes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import threading
import time
import warnings
from collections.abc import Callable, Container, Sequence
from typing import Any, TypeVar, cast

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat  # the heartbeat contract (not re-exported)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from iaprune.config import MASK, masked_url, unmasked_url
from iaprune.errors import IAPruneError, one_line

log = logging.getLogger(__name__)

T = TypeVar("T")

GRACE_FACTOR = 3
"""A trial is stale after ``GRACE_FACTOR`` heartbeat intervals without a heartbeat."""
MAX_RETRY = 3
"""How often a trial whose worker died is re-enqueued."""
FIRST_WAIT = 1.0
"""Seconds before the first retry of an unreachable storage; doubled after each retry."""
MAX_WAIT = 30.0
"""Longest wait between two retries."""
CONNECT_TIMEOUT = 10
"""Seconds a PostgreSQL/MySQL connection attempt may take (an unreachable host)."""


class StorageUnavailable(IAPruneError):
    """The study's database stayed unreachable for longer than the retry time."""


def open_storage(url: str, *, heartbeat: int, retry: float = 0.0) -> RetryingStorage:
    """The storage at ``url``, with heartbeats every ``heartbeat`` s and retried stale trials.

    Calls are retried for up to ``retry`` seconds while the database is unreachable.
    SQLite waits up to 60 s for a lock instead of failing, so local workers can share a
    ``study.db``. A bad URL or an unreachable server is a one-line error.
    """
    if heartbeat < 1:
        raise IAPruneError("--heartbeat must be >= 1 second")
    shown = masked_url(url)
    url = _driver(unmasked_url(url))
    callback_cls = getattr(
        optuna.storages,
        "RetryHeartbeatStaleTrialCallback",
        optuna.storages.RetryFailedTrialCallback,
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            rdb = optuna.storages.RDBStorage(
                url,
                engine_kwargs=_engine_kwargs(url),
                heartbeat_interval=heartbeat,
                grace_period=GRACE_FACTOR * heartbeat,
                heartbeat_stale_trial_callback=callback_cls(max_retry=MAX_RETRY),
            )
    except ModuleNotFoundError as exc:
        raise IAPruneError(
            f"cannot open study storage {shown}: {one_line(exc)} "
            "(PostgreSQL needs: pip install 'iaprune[distributed]')"
        ) from exc
    except Exception as exc:  # SQLAlchemy raises many types for a bad URL or server
        hint = ""
        if MASK in shown and _password(url) is None:
            hint = " (the URL's password is masked: pass --storage with it, or set PGPASSWORD)"
        reason = _reason(exc, 200)
        secret = _password(url)
        if secret:
            reason = reason.replace(secret, MASK)
        raise IAPruneError(f"cannot open study storage {shown}: {reason}{hint}") from exc
    # What optuna.create_study makes of an RDBStorage (a cache of finished trials over it).
    cached = optuna.storages.get_storage(rdb)
    return RetryingStorage(cached, shown, retry, reset=rdb.remove_session)


def _driver(url: str) -> str:
    """``postgresql://`` through psycopg 3 when psycopg2 (SQLAlchemy's default) is absent."""
    plain = url.startswith("postgresql://")
    if (
        plain
        and importlib.util.find_spec("psycopg2") is None
        and importlib.util.find_spec("psycopg")
    ):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _engine_kwargs(url: str) -> dict[str, Any]:
    """SQLite: wait 60 s for a lock. Servers: test pooled connections (a restarted server
    closed them) and bound a connection attempt (unless the URL sets ``connect_timeout``)."""
    from sqlalchemy.engine import make_url

    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    try:
        parsed = make_url(url)
    except Exception:  # RDBStorage reports the bad URL
        return kwargs
    if parsed.get_backend_name() in ("postgresql", "mysql") and (
        "connect_timeout" not in parsed.query
    ):
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    return kwargs


def _password(url: str) -> str | None:
    """The password in ``url`` (user part or query), if any."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # not a URL
        return None
    secret = parsed.password or parsed.query.get("password")
    return str(secret) if secret else None


def _cause(exc: BaseException) -> BaseException | None:
    """The SQLAlchemy error behind ``exc`` that means the database is unreachable, if any.

    Optuna wraps SQLAlchemy's errors in ``StorageInternalError`` (``raise ... from``), so
    the ``__cause__`` chain is followed; a connection error, a lost connection and
    SQLite's lock timeout are ``OperationalError`` / ``InterfaceError``, and a session
    whose connection was lost in a transaction raises ``PendingRollbackError`` next.
    """
    from sqlalchemy import exc as sa

    lost = sa.OperationalError | sa.InterfaceError | sa.DisconnectionError | sa.PendingRollbackError
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, lost):
            return current
        if isinstance(current, sa.DBAPIError) and current.connection_invalidated:
            return current
        current = current.__cause__
    return None


def _reason(exc: BaseException, limit: int = 120) -> str:
    """The driver's message behind ``exc`` on one line (not Optuna's or SQLAlchemy's notes)."""
    seen: set[int] = set()
    while exc.__cause__ is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__
    return one_line(getattr(exc, "orig", None) or exc, limit)


def lost_storage(exc: BaseException) -> StorageUnavailable | None:
    """The :class:`StorageUnavailable` behind ``exc``, if any.

    Optuna's trial loop may replace it with an error of its own while it reports the
    trial (``UnboundLocalError``), so the whole chain is searched.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StorageUnavailable):
            return current
        current = current.__cause__ or current.__context__
    return None


class RetryingStorage(BaseStorage, BaseHeartbeat):
    """An Optuna storage whose calls are retried while its database is unreachable.

    Wraps the storage Optuna itself would use (:func:`optuna.storages.get_storage`) and
    delegates every method of Optuna's storage and heartbeat contracts to it. ``url`` is
    the masked URL shown in messages; ``retry`` the seconds an outage may last; ``reset``
    drops the calling thread's database session after a failed call (a session whose
    connection was lost refuses further work until rolled back).
    """

    def __init__(
        self,
        inner: BaseStorage,
        url: str,
        retry: float,
        *,
        reset: Callable[[], None] | None = None,
    ) -> None:
        self._inner = inner
        self._reset = reset
        self._beat = cast(BaseHeartbeat, inner)
        self.url = url
        self.retry = retry
        self._lock = threading.Lock()
        self._since: float | None = None  # when the current outage began (monotonic)
        self._retries = 0
        self._next_log = 0.0
        self._up = threading.Event()  # set when a call succeeds: waiting threads retry now
        self._up.set()

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        wait = FIRST_WAIT
        while True:
            try:
                result = fn(*args)
            except StorageUnavailable:
                raise
            except Exception as exc:
                cause = _cause(exc)
                if cause is None:
                    raise
                pause = self._failed(cause, wait)
                if self._reset is not None:
                    with contextlib.suppress(Exception):  # the session is dropped either way
                        self._reset()
                self._up.wait(pause)
                wait = min(2 * wait, MAX_WAIT)
                continue
            if self._since is not None:
                self._recovered()
            return result

    def _failed(self, cause: BaseException, wait: float) -> float:
        """Record a failed call; the seconds to wait before retrying it.

        Raises:
            StorageUnavailable: the outage has lasted ``retry`` seconds.
        """
        now = time.monotonic()
        with self._lock:
            if self._since is None:
                self._since = now
                self._up.clear()
            left = self._since + self.retry - now
            if left <= 0:
                raise StorageUnavailable(
                    f"study storage {self.url} unreachable for {self.retry:g} s "
                    f"({_reason(cause)}); finished trials are kept in it: run the command "
                    "again once the database is back (--storage-retry sets how long to wait)"
                ) from cause
            wait = min(wait, left)
            if now >= self._next_log:  # one line per retry, whichever thread retries
                self._next_log = now + wait
                self._retries += 1
                log.warning(
                    "study storage %s unreachable (%s): retry %d in %.0f s, giving up in %.0f s",
                    self.url,
                    _reason(cause),
                    self._retries,
                    wait,
                    left,
                )
        return wait

    def _recovered(self) -> None:
        with self._lock:
            if self._since is None:
                return
            down = time.monotonic() - self._since
            self._since, self._retries, self._next_log = None, 0, 0.0
            self._up.set()
        log.warning("study storage %s is back after %.0f s", self.url, down)

    # -- BaseStorage ------------------------------------------------------------------
    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        return self._call(self._inner.create_new_study, directions, study_name)

    def delete_study(self, study_id: int) -> None:
        self._call(self._inner.delete_study, study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._call(self._inner.set_study_user_attr, study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._call(self._inner.set_study_system_attr, study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._call(self._inner.get_study_id_from_name, study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._call(self._inner.get_study_name_from_id, study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._call(self._inner.get_study_directions, study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._call(self._inner.get_study_user_attrs, study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._call(self._inner.get_study_system_attrs, study_id)

    def get_all_studies(self) -> list[Any]:  # Optuna's FrozenStudy is not exported
        return self._call(self._inner.get_all_studies)

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self._call(self._inner.create_new_trial, study_id, template_trial)

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        self._call(
            self._inner.set_trial_param, trial_id, param_name, param_value_internal, distribution
        )

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._call(
            self._inner.get_trial_id_from_study_id_trial_number, study_id, trial_number
        )

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        return self._call(self._inner.set_trial_state_values, trial_id, state, values)

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self._call(self._inner.set_trial_intermediate_value, trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._call(self._inner.set_trial_user_attr, trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._call(self._inner.set_trial_system_attr, trial_id, key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._call(self._inner.get_trial, trial_id)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        return self._call(self._inner.get_all_trials, study_id, deepcopy, states)

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return self._call(self._inner.get_best_trial, study_id)

    def remove_session(self) -> None:
        self._inner.remove_session()

    # -- BaseHeartbeat ----------------------------------------------------------------
    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self._call(self._beat.record_heartbeat, trial_id)
        except StorageUnavailable:  # the main thread reports it; no traceback from a thread
            log.debug("heartbeat of trial id %d not recorded", trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return self._call(self._beat._get_stale_trial_ids, study_id)

    def get_heartbeat_interval(self) -> int | None:
        return self._beat.get_heartbeat_interval()

    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self._beat.get_heartbeat_stale_trial_callback()
