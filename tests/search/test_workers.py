"""Several processes on one study: exact trial count, retried killed trials, shared storage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from iaprune.search.workers import counts, in_budget, open_storage
from tests.conftest import tiny_args

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _trial(number: int, state: TrialState, **attrs: object) -> optuna.trial.FrozenTrial:
    trial = create_trial(
        state=state,
        value=0.5 if state == TrialState.COMPLETE else None,
        params={"a": 0.5},
        distributions={"a": FloatDistribution(0, 1)},
        user_attrs=dict(attrs),
    )
    trial.number = number
    return trial


def test_only_finished_and_raising_trials_count() -> None:
    assert counts(_trial(0, TrialState.COMPLETE))
    assert counts(_trial(1, TrialState.FAIL, error="boom"))
    assert not counts(_trial(2, TrialState.FAIL))  # failed by the heartbeat: retried
    assert not counts(_trial(3, TrialState.PRUNED, surplus=True))


def test_the_later_of_two_racing_trials_is_surplus() -> None:
    trials = [_trial(i, TrialState.COMPLETE) for i in range(3)]
    trials += [_trial(3, TrialState.FAIL), _trial(4, TrialState.RUNNING)]
    assert in_budget(trials, 4, n_trials=4)  # 3 done before it, the stale FAIL not counted
    assert not in_budget([*trials, _trial(5, TrialState.RUNNING)], 5, n_trials=4)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "iaprune.cli.main", *args]


def _env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": SRC, "IAPRUNE_NO_PROGRESS": "1"}


@pytest.mark.postgres
def test_two_workers_on_postgres_recover_a_killed_worker(postgres_url: str, tmp_path: Path) -> None:
    trials, study_name = 8, "killtest"
    run_args = tiny_args(
        trials=trials,
        trial_steps=100,
        sampler="random",
        storage=postgres_url,
        study_name=study_name,
        workers=2,
        heartbeat=1,
    )
    args = ["search", "--run-dir", str(tmp_path / "run"), *run_args]
    leader = subprocess.Popen(_cli(*args), env=_env(), stderr=subprocess.PIPE, text=True)
    storage = open_storage(postgres_url, heartbeat=1)
    killed: tuple[int, int] | None = None  # (trial number, worker pid)
    deadline = time.monotonic() + 120
    while killed is None and leader.poll() is None and time.monotonic() < deadline:
        try:
            study = optuna.load_study(study_name=study_name, storage=storage)
        except KeyError:  # not created yet (baseline still training)
            time.sleep(0.2)
            continue
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            pid = int(t.user_attrs.get("worker", ":0").rsplit(":", 1)[1])
            if pid not in (0, leader.pid):
                os.kill(pid, signal.SIGKILL)
                killed = (t.number, pid)
                break
        time.sleep(0.1)
    _, err = leader.communicate(timeout=180)
    assert leader.returncode == 0, err[-2000:]
    assert killed is not None, "the extra worker never ran a trial"

    study = optuna.load_study(study_name=study_name, storage=storage)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(complete) == trials
    assert [t.state for t in study.trials if t.number == killed[0]] == [TrialState.FAIL]
    retries = [t for t in complete if t.system_attrs.get("failed_trial") == killed[0]]
    assert len(retries) == 1
    warm = [t.user_attrs["warm_start"] for t in complete if "warm_start" in t.user_attrs]
    assert sorted(warm) == sorted(set(warm)) and warm  # each warm start finished once
    params = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(params)) == len(params)
    assert {t.user_attrs["worker"] for t in complete} >= {f"{os.uname().nodename}:{leader.pid}"}
    assert study.user_attrs["iaprune_run"]["model"] == "test_vgg"
    assert "search.json" in os.listdir(tmp_path / "run")

    # The same storage and study name for another run's definition: refused in seconds.
    other = [a if a != str(tmp_path / "run") else str(tmp_path / "other") for a in args]
    res = subprocess.run(
        _cli(*other, "--seed", "1"), env=_env(), capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2
    assert "belongs to another run" in res.stderr and "seed: 0 -> 1" in res.stderr
    assert "Traceback" not in res.stderr


def test_the_run_definition_is_stored_in_parts_a_dashboard_shows_whole() -> None:
    from iaprune.search.workers import DEFINITION_ATTR, mark_ready

    study = optuna.create_study()
    definition = {
        "config": {"search": {f"option_{i}": "x" * 30 for i in range(60)}},  # > 1,024 chars
        "baseline_sha256": "ab" * 32,
    }
    mark_ready(study, definition, 10)
    attrs = study.user_attrs
    assert attrs[DEFINITION_ATTR] == definition  # what workers compare, unchanged
    parts = {k: v for k, v in attrs.items() if k.startswith(DEFINITION_ATTR + ".")}
    assert all(len(v) <= 1000 for v in parts.values())
    assert json.loads(parts[DEFINITION_ATTR + ".baseline_sha256"]) == "ab" * 32
    pieces = [k for k in parts if k.startswith(DEFINITION_ATTR + ".config.")]
    config = "".join(parts[k] for k in sorted(pieces, key=lambda k: int(k.rsplit(".", 1)[1])))
    assert json.loads(config) == definition["config"]
