"""``iaprune worker`` started before its leader waits for the run, with a time limit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna

from iaprune.cli.main import main
from iaprune.rundir import sqlite_url
from tests.conftest import TINY_RUN_ARGS

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "iaprune.cli.main", *args]


def test_a_worker_started_before_its_leader_waits_and_joins(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = os.environ | {"PYTHONPATH": SRC, "IAPRUNE_NO_PROGRESS": "1"}
    worker = subprocess.Popen(
        _cli("worker", str(run), "--wait", "300"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stderr is not None
        first = worker.stderr.readline()  # the worker waits before the leader starts
        assert "waiting up to 300 s for the search of" in first, first
        # the leader trains a baseline epoch while the worker waits, then searches
        assert main(["search", "--run-dir", str(run), *TINY_RUN_ARGS, "--rescore", "0"]) == 0
        out, err = worker.communicate(timeout=300)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    assert "waiting up to" not in err  # one line however long it waited
    assert "worker: ran" in out
    study = optuna.load_study(study_name="run", storage=sqlite_url(run / "study.db"))
    joined = [k for k in study.user_attrs if k.startswith("iaprune_joined:")]
    assert [k.rsplit(":", 1)[1] for k in joined] == [str(worker.pid)]


def test_a_worker_whose_run_never_starts_stops_with_one_line(tmp_path: Path, capsys) -> None:
    assert main(["worker", str(tmp_path / "never"), "--wait", "1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and "no config.json) after waiting 1 s" in errors[0], lines
    assert not (tmp_path / "never").exists()


def test_a_negative_wait_is_refused(tmp_path: Path, capsys) -> None:
    assert main(["worker", str(tmp_path), "--wait", "-1"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --wait must be")
