"""The study's PostgreSQL server restarts or stays down mid-search; its password stays secret.

These tests run their own throwaway server (they stop it), with a role ``iaprune_pw`` that
must log in with a password (scram-sha-256), so the URL's password matters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from iaprune.cli.main import main
from iaprune.config import masked_url
from iaprune.errors import IAPruneError
from iaprune.search import open_storage
from tests import _postgres
from tests.conftest import tiny_args

SRC = str(Path(__file__).resolve().parents[2] / "src")
USER, DATABASE = "iaprune_pw", "pwdb"
SECRET = "s3cret-Pa55"
FAST = tiny_args(baseline_epochs=0, trial_steps=20, sampler="random", rescore=0, heartbeat=1)
"""A search of about a second per trial, without baseline training or finalists."""


@dataclass
class Server:
    """A throwaway PostgreSQL cluster under ``root`` that a test may stop and start again."""

    root: Path
    port: int

    def url(self, user: str = USER, password: str | None = None) -> str:
        auth = f"{user}:{password}" if password else user
        sock = self.root / "sock"
        return f"postgresql+psycopg://{auth}@/{DATABASE}?host={sock}&port={self.port}"

    def stop(self) -> None:
        _postgres.stop(self.root / "data")

    def serve(self) -> None:
        _postgres.serve(self.root, self.port)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    if _postgres.bindir() is None:
        pytest.skip(_postgres.MISSING)
    psycopg = pytest.importorskip(
        "psycopg", reason="psycopg missing: pip install -e '.[distributed]'"
    )
    root = Path(tempfile.mkdtemp(prefix="iaprune-pg-faults-"))
    try:
        url, data = _postgres.start(root)
        server = Server(root, int(url.rsplit("port=", 1)[1]))
        admin = {"host": str(root / "sock"), "port": server.port, "user": "postgres"}
        with psycopg.connect(**admin, dbname="iaprune", autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{SECRET}'")
            conn.execute(f"CREATE DATABASE {DATABASE} OWNER {USER}")
            hba = data / "pg_hba.conf"  # the role logs in with its password, others as before
            hba.write_text(f"local all {USER} scram-sha-256\n" + hba.read_text())
            conn.execute("SELECT pg_reload_conf()")
        yield server
    finally:
        _postgres.stop(root / "data")
        shutil.rmtree(root, ignore_errors=True)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "iaprune.cli.main", *args]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test's environment without a password from it or from ~/.pgpass, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
    return env | {
        "PYTHONPATH": SRC,
        "IAPRUNE_NO_PROGRESS": "1",
        "PGPASSFILE": str(tmp_path / "no.pgpass"),
        **extra,
    }


def _wait_mid_search(
    server: Server, study_name: str, leader: subprocess.Popen[str], log: Path
) -> None:
    """Return once a trial of the study is complete and another one is running."""
    deadline = time.monotonic() + 240
    while not (log.parent / "run" / "config.json").is_file() and leader.poll() is None:
        time.sleep(0.2)  # the leader has made Optuna's tables: opening the storage makes none
    storage = optuna.storages.RDBStorage(server.url(password=SECRET))
    try:
        while time.monotonic() < deadline and leader.poll() is None:
            try:
                trials = optuna.load_study(study_name=study_name, storage=storage).trials
            except KeyError:  # not created yet
                trials = []
            states = {t.state for t in trials}
            if {TrialState.COMPLETE, TrialState.RUNNING} <= states:
                return
            time.sleep(0.2)
    finally:
        storage.engine.dispose()
    pytest.fail(f"no trial ran (leader exit code {leader.poll()}): {log.read_text()[-3000:]}")


def _study(server: Server, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=server.url(password=SECRET))


@pytest.mark.postgres
def test_a_search_survives_a_restart_of_its_database(server: Server, tmp_path: Path) -> None:
    trials, run, log = 6, tmp_path / "run", tmp_path / "leader.log"
    args = ["--trials", str(trials), "--storage", server.url(password=SECRET)]
    args += ["--study-name", "restart", "--workers", "2", "--storage-retry", "120"]
    with log.open("w") as err:
        leader = subprocess.Popen(
            _cli("search", "--run-dir", str(run), *FAST, *args),
            env=_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
        try:
            _wait_mid_search(server, "restart", leader, log)
            server.stop()  # pg_ctl stop -m fast: every connection is closed
            time.sleep(3)
            server.serve()
            assert leader.wait(timeout=240) == 0, log.read_text()[-3000:]
        finally:
            if leader.poll() is None:
                leader.kill()
    text = log.read_text()
    assert "Traceback" not in text, text[-8000:]
    assert "unreachable" in text and "is back after" in text  # retried, logged, recovered
    study = _study(server, "restart")
    assert not [
        t.number for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)
    ]
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) == trials
    retried = {t.system_attrs.get("failed_trial") for t in study.trials}
    for t in study.trials:  # a trial failed by the heartbeat check was run again
        assert t.state != TrialState.FAIL or t.number in retried, (t, text[-6000:])
    # The local worker joined with the URL's password, which config.json and the log mask.
    assert [k for k in study.user_attrs if k.startswith("iaprune_joined:")]
    stored = json.loads((run / "config.json").read_text())["search"]["storage"]
    assert stored == masked_url(server.url(password=SECRET))
    assert SECRET not in text and SECRET not in (run / "config.json").read_text()


@pytest.mark.postgres
def test_a_database_that_stays_down_ends_the_search_with_one_line(
    server: Server, tmp_path: Path
) -> None:
    log = tmp_path / "leader.log"
    args = ["--trials", "100", "--storage", server.url(), "--study-name", "down"]
    with log.open("w") as err:  # the password only in PGPASSWORD, as libpq reads it
        leader = subprocess.Popen(
            _cli(
                "search", "--run-dir", str(tmp_path / "run"), *FAST, *args, "--storage-retry", "3"
            ),
            env=_env(tmp_path, PGPASSWORD=SECRET),
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
        try:
            _wait_mid_search(server, "down", leader, log)
            server.stop()
            code = leader.wait(timeout=120)
        finally:
            if leader.poll() is None:
                leader.kill()
            server.serve()
    text = log.read_text()
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert code == 2, text[-3000:]
    assert len(errors) == 1 and "unreachable for 3 s" in errors[0], text[-3000:]
    assert "Traceback" not in text, text[-8000:]


@pytest.mark.postgres
def test_a_masked_password_is_never_sent(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no.pgpass"))
    masked = server.url(password="***")  # as config.json stores it
    with pytest.raises(IAPruneError) as refused:
        open_storage(masked, heartbeat=1)
    assert "no password supplied" in str(refused.value)  # not '***' as a password
    assert "PGPASSWORD" in str(refused.value)
    with pytest.raises(IAPruneError) as wrong:
        open_storage(server.url(password="hunter2-wrong"), heartbeat=1)
    assert "password authentication failed" in str(wrong.value)
    assert "hunter2" not in str(wrong.value) and "***" in str(wrong.value)
    monkeypatch.setenv("PGPASSWORD", SECRET)
    assert open_storage(masked, heartbeat=1).get_all_studies() is not None


def test_a_bad_storage_retry_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["search", "--run-dir", str(run), "--storage-retry", "-5"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["error: --storage-retry must be a number of seconds in 0..86400, got -5.0"]
    assert not run.exists()
