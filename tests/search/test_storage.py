"""The study's storage: retried while unreachable, given up on in time, passwords masked."""

from __future__ import annotations

import logging
from typing import Any

import optuna
import pytest
from sqlalchemy import exc as sa

from iaprune.config import RunConfig, SearchConfig, masked_url, unmasked_url
from iaprune.errors import IAPruneError
from iaprune.resume import describe_changes
from iaprune.search import storage as storage_module
from iaprune.search.storage import RetryingStorage, StorageUnavailable, lost_storage

URL = "postgresql://alice:s3cret@db.example/iaprune"


def _refused() -> Exception:
    """What Optuna raises when the server is down: a wrapped SQLAlchemy OperationalError."""
    cause = sa.OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
    try:
        raise optuna.exceptions.StorageInternalError("during the commit") from cause
    except optuna.exceptions.StorageInternalError as exc:
        return exc


class Flaky:
    """A storage whose ``get_all_studies`` fails ``failures`` times with ``error()``."""

    def __init__(self, failures: int, error: Any = _refused) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def get_all_studies(self) -> list[str]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error()
        return ["study"]

    def record_heartbeat(self, trial_id: int) -> None:
        raise _refused()


@pytest.fixture(autouse=True)
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_module, "FIRST_WAIT", 0.01)
    monkeypatch.setattr(storage_module, "MAX_WAIT", 0.02)


def test_an_unreachable_storage_is_retried_until_it_is_back(caplog) -> None:
    inner = Flaky(failures=3)
    store = RetryingStorage(inner, masked_url(URL), retry=60)
    with caplog.at_level(logging.WARNING, logger="iaprune.search.storage"):
        assert store.get_all_studies() == ["study"]
    assert inner.calls == 4
    lines = [r.getMessage() for r in caplog.records]
    assert any("unreachable (connection refused): retry 1 in" in m for m in lines), lines
    assert "is back after" in lines[-1]
    assert all("s3cret" not in m and "alice:***@" in m for m in lines)


def test_a_storage_down_longer_than_the_retry_time_is_one_line() -> None:
    store = RetryingStorage(Flaky(failures=10**9), masked_url(URL), retry=0.05)
    with pytest.raises(StorageUnavailable) as lost:
        store.get_all_studies()
    message = str(lost.value)
    assert isinstance(lost.value, IAPruneError) and "\n" not in message
    assert "unreachable for 0.05 s (connection refused)" in message and "s3cret" not in message


def test_errors_other_than_an_unreachable_database_are_not_retried() -> None:
    inner = Flaky(failures=1, error=lambda: optuna.exceptions.UpdateFinishedTrialError("done"))
    store = RetryingStorage(inner, URL, retry=60)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        store.get_all_studies()
    assert inner.calls == 1


def test_a_heartbeat_thread_gives_up_silently() -> None:
    store = RetryingStorage(Flaky(failures=0), URL, retry=0.05)
    store.record_heartbeat(1)  # no exception: the main thread reports the outage


def test_a_lost_storage_is_found_behind_optunas_own_error() -> None:
    try:
        try:
            raise StorageUnavailable("down")
        except StorageUnavailable:
            raise UnboundLocalError("updated_state") from None  # as Optuna's trial loop does
    except UnboundLocalError as exc:
        found = lost_storage(exc)
    assert isinstance(found, StorageUnavailable)
    assert lost_storage(ValueError("other")) is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (URL, "postgresql://alice:***@db.example/iaprune"),
        (
            "postgresql://bob@db/x?password=pw&sslmode=require",
            "postgresql://bob@db/x?password=***&sslmode=require",
        ),
        ("postgresql://bob@db/x", "postgresql://bob@db/x"),
        ("sqlite:////runs/a%3Fb/study.db", "sqlite:////runs/a%3Fb/study.db"),
        ("weird://u:pw@h", "weird://u:***@h"),
    ],
)
def test_storage_urls_are_shown_with_the_password_masked(url: str, shown: str) -> None:
    assert masked_url(url) == shown


def test_a_masked_password_is_dropped_before_connecting() -> None:
    assert unmasked_url(masked_url(URL)) == "postgresql://alice@db.example/iaprune"
    assert unmasked_url("postgresql://bob@db/x?password=***&a=1") == "postgresql://bob@db/x?a=1"
    assert unmasked_url(URL) == URL  # a real password is used


def test_config_json_and_the_resume_diff_mask_the_password() -> None:
    config = RunConfig(search=SearchConfig(storage=URL))
    assert config.to_dict()["search"]["storage"] == URL  # the running process keeps it
    assert config.stored()["search"]["storage"] == masked_url(URL)
    other = RunConfig(search=SearchConfig(storage=URL.replace("s3cret", "n3w")))
    assert "s3cret" not in describe_changes(config, other)
    assert "n3w" not in describe_changes(config, other)


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), 1e9])
def test_storage_retry_must_be_a_sane_number_of_seconds(seconds: float) -> None:
    with pytest.raises(IAPruneError, match="--storage-retry must be"):
        SearchConfig(storage_retry=seconds)


def test_the_wrapper_covers_every_method_of_optunas_storage_contracts() -> None:
    """Optuna's heartbeat contract is not public: an Optuna release that adds or renames a
    method of either contract fails here, not in a user's search (``optuna<6`` is pinned)."""
    from optuna.storages import BaseStorage
    from optuna.storages._heartbeat import BaseHeartbeat

    for contract in (BaseStorage, BaseHeartbeat):
        missing = sorted(set(contract.__abstractmethods__) - set(vars(RetryingStorage)))
        assert not missing, f"RetryingStorage does not wrap {contract.__name__}.{missing}"
    assert not RetryingStorage.__abstractmethods__
