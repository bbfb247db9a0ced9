"""Run directories: --overwrite never loses a run, storage URLs, self-contained runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest
import torch
from sqlalchemy.engine import make_url

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
