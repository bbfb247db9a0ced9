"""Run directories: --overwrite never loses a run, storage URLs, self-contained runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch
from sqlalchemy.engine import make_url

import iaprune
from iaprune.cli.main import main
from iaprune.errors import IAPruneError
from iaprune.models import create_model
from iaprune.pipeline import RunConfig, Session
from iaprune.rundir import RunDir, sqlite_url
from tests.test_safety import FAST, _error, _snapshot


def _siblings(run: Path) -> list[str]:
    return sorted(p.name for p in run.parent.iterdir())


@pytest.mark.parametrize(
    "bad", [["--dataset", "nope"], ["--model", "nope"], ["--checkpoint", "missing.pt"]]
)
def test_overwrite_with_bad_arguments_keeps_the_finished_run(
    received_run: Path, bad: list[str], capsys
) -> None:
    before, siblings = _snapshot(received_run), _siblings(received_run)
    assert main(["prune", "--run-dir", str(received_run), *FAST, *bad, "--overwrite"]) == 2
    _error(capsys)
    assert _snapshot(received_run) == before
    assert _siblings(received_run) == siblings


def test_overwrite_with_mismatching_checkpoint_keeps_the_run(
    received_run: Path, tmp_path: Path, capsys
) -> None:
    ckpt = tmp_path / "other.pt"
    torch.save(create_model("test_vgg", num_classes=3, in_channels=1).state_dict(), ckpt)
    before = _snapshot(received_run)
    argv = ["search", "--run-dir", str(received_run), *FAST, "--checkpoint", str(ckpt)]
    assert main([*argv, "--overwrite"]) == 2
    assert "does not match" in _error(capsys)
    assert _snapshot(received_run) == before


def test_overwrite_replaces_the_run_once_started(received_run: Path) -> None:
    siblings = _siblings(received_run)
    config = RunConfig(model="test_vgg", width_mult=1.0)
    Session.create(received_run, config, overwrite=True)
    assert not (received_run / "report.json").exists()
    assert (received_run / "config.json").is_file()
    assert _siblings(received_run) == siblings


def test_failed_new_run_leaves_no_directory(tmp_path: Path) -> None:
    with pytest.raises(IAPruneError, match="unknown dataset"):
        Session.create(tmp_path / "new", RunConfig(model="test_vgg", dataset="nope"))
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("name", ["odd?name", "odd#name", "per%20cent", "q?a=1#frag"])
def test_storage_url_keeps_odd_run_dir_names(tmp_path: Path, name: str) -> None:
    run = RunDir.prepare(tmp_path / "runs" / name)
    assert make_url(run.storage).database == str((run / "study.db").resolve())
    study = optuna.create_study(storage=run.storage, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert (run / "study.db").is_file()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [name]
    other = RunDir.prepare(tmp_path / "runs" / (name + "2"))
    assert sqlite_url(other / "study.db") != run.storage
    assert optuna.get_all_study_summaries(other.storage) == []


def test_checkpoint_is_copied_in_and_paths_stored_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    model = create_model("test_vgg", num_classes=10, in_channels=1, width_mult=1.0)
    torch.save({"state_dict": model.state_dict()}, "ckpt.pt")
    config = RunConfig(model="test_vgg", width_mult=1.0, checkpoint="ckpt.pt", data_root=None)
    Session.create("run", config)
    saved = json.loads(Path("run/config.json").read_text())
    assert saved["checkpoint"] == str(work / "ckpt.pt")
    copied = torch.load("run/baseline.pt", weights_only=True)  # a finished baseline.pt
    assert copied["complete"] and copied["source"] == str(work / "ckpt.pt")
    for name, value in model.state_dict().items():
        assert torch.equal(copied["state_dict"][name], value), name

    other = create_model("test_vgg", num_classes=10, in_channels=1, width_mult=1.0)
    torch.save({"state_dict": other.state_dict()}, "ckpt.pt")  # the external file changes
    monkeypatch.chdir(tmp_path)  # and the run is reopened from elsewhere
    base = Session.open(work / "run").baseline()
    for name, value in model.state_dict().items():
        assert torch.equal(base.state_dict()[name], value), name


def test_model_file_is_copied_in(tmp_path: Path) -> None:
    path = tmp_path / "net.pt"
    torch.save(create_model("test_vgg", num_classes=10, in_channels=1), path)
    run = tmp_path / "run"
    Session.create(run, RunConfig(model=str(path)), trust_code=True)
    assert json.loads((run / "model.json").read_text())["target"] == "model.pt"
    path.unlink()
    assert Session.open(run, trust_code=True).recipe.build() is not None
    with pytest.raises(IAPruneError, match="--trust-code"):
        Session.open(run).recipe.build()


def test_resume_keeps_copied_model(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.rmtree(run, ignore_errors=True)
    Session.create(run, RunConfig(model="test_vgg", width_mult=1.0))
    again = Session.create(run, RunConfig(model="test_vgg", width_mult=1.0), resume=True)
    assert again.recipe.kind == "zoo"


# -- one writer at a time; an interrupted --overwrite is undone -----------------------------

ENV = os.environ | {
    "PYTHONPATH": str(Path(iaprune.__file__).resolve().parents[1]),
    "IAPRUNE_NO_PROGRESS": "1",
}


def _wait_for(check: Callable[[], bool], proc: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert proc.poll() is None, "the process ended early"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_second_writer_gets_one_line_and_exit_2(received_run: Path, capsys) -> None:
    config = json.loads((received_run / "config.json").read_text())
    argv = ["prune", "--run-dir", str(received_run), "--resume", "--epochs", "50"]
    holder = subprocess.Popen(
        [sys.executable, "-m", "iaprune.cli.main", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        _wait_for(lambda: (received_run / "pruned.partial.pt").exists(), holder)
        for other in (
            ["prune", "--run-dir", str(received_run), "--resume", "--epochs", "4"],
            ["prune", "--run-dir", str(received_run), "--overwrite", *FAST],
            ["search", "--run-dir", str(received_run), "--resume", "--trials", "3"],
            ["finetune", str(received_run), "--epochs", "2"],
            ["report", str(received_run)],
            ["export", str(received_run), "--format", "torchscript", "--repeats", "1"],
        ):
            assert main(other) == 2, other
            message = _error(capsys)
            assert "in use by another iaprune process" in message, other
            assert f"pid {holder.pid}" in message, other
        assert json.loads((received_run / "config.json").read_text())["finetune"]["epochs"] == 50
        assert not (received_run / "pruned.ts.pt").exists()
        holder.send_signal(signal.SIGTERM)
        assert holder.wait(timeout=60) == 143
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    # the lock dies with its holder: the run can be continued (here: its report rewritten)
    assert main(["report", str(received_run), "--no-plots"]) == 0
    assert config["finetune"]["epochs"] == 1


def _overwritten(run: Path, *, started: bool) -> Path:
    """The state a killed ``--overwrite`` leaves: ``run`` moved aside, maybe a new start."""
    holder = run.parent / f".{run.name}.overwritten-x1y2"
    holder.mkdir()
    run.rename(holder / run.name)
    run.mkdir()
    (run / ".iaprune.lock").write_text("")
    if started:
        (run / "config.json").write_text((holder / run.name / "config.json").read_text())
        (run / "model.json").write_text((holder / run.name / "model.json").read_text())
    return holder


def test_a_run_moved_aside_by_a_killed_overwrite_is_restored(received_run: Path, capsys) -> None:
    before = _snapshot(received_run)
    holder = _overwritten(received_run, started=False)
    assert main(["report", str(received_run), "--no-plots"]) == 0
    assert not holder.exists()

    def kept(files: dict[str, bytes]) -> dict[str, bytes]:
        return {k: v for k, v in files.items() if not k.startswith((".", "report."))}

    assert kept(_snapshot(received_run)) == kept(before)


def test_a_missing_run_moved_aside_is_found_by_resume(received_run: Path, capsys) -> None:
    holder = _overwritten(received_run, started=False)
    shutil.rmtree(received_run)  # killed before the new directory was put in place
    assert main(["evaluate", str(received_run), "--split", "val"]) == 0
    assert (received_run / "config.json").is_file() and not holder.exists()


def test_an_overwrite_that_started_drops_the_old_run(received_run: Path) -> None:
    holder = _overwritten(received_run, started=True)
    Session.open(received_run)
    assert not holder.exists() and not (received_run / "pruned.pt").exists()
