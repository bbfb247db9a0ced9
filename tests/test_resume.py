"""Stage completion and --resume: interrupted stages continue, finished ones are kept."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import iaprune
from iaprune.cli.main import main
from iaprune.config import FinetuneConfig
from iaprune.errors import IAPruneError
from iaprune.model_source import resolve_model
from iaprune.pipeline import RunConfig, Session
from iaprune.train import finetune
from tests.conftest import tiny_args

TINY = tiny_args(
    width_mult=None,
    batch_size=None,
    final_steps=None,
    baseline_epochs=2,
    trials=3,
    epochs=2,
    objective="pareto",
)
ft = importlib.import_module("iaprune.train.finetune")  # the module, not the function
ENV = os.environ | {"PYTHONPATH": str(Path(iaprune.__file__).resolve().parents[1])}


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _interrupt_at(monkeypatch, call: int) -> None:
    """Ctrl-C at the start of the ``call``-th training epoch."""
    real = ft.train_epoch
    calls = {"n": 0}

    def fake(*args, **kw):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(ft, "train_epoch", fake)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished pareto run, made through a subprocess without a terminal."""
    run = tmp_path_factory.mktemp("resume") / "done"
    proc = subprocess.run(
        [sys.executable, "-m", "iaprune.cli.main", "prune", "--run-dir", str(run), *TINY],
        capture_output=True,
        text=True,
        check=False,
        env=ENV | {"IAPRUNE_NO_PROGRESS": "1"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run.parent / "stderr.txt").write_text(proc.stderr)
    return run


def _copy(finished: Path, tmp_path: Path) -> Path:
    run = tmp_path / "copy"
    shutil.copytree(finished, run)
    return run


def test_progress_is_logged_without_a_terminal(finished: Path) -> None:
    err = (finished.parent / "stderr.txt").read_text()
    for needle in (
        "stage baseline",
        "baseline epoch 2/2",
        "stage search",
        "trial 2:",
        "stage report",
    ):
        assert needle in err


def test_interrupted_baseline_is_not_reused_and_resumes_from_its_last_epoch(
    tmp_path, monkeypatch
) -> None:
    run = tmp_path / "r"
    _interrupt_at(monkeypatch, 2)
    assert main(["prune", "--run-dir", str(run), *TINY]) == 130
    assert not (run / "baseline.pt").exists()
    partial = torch.load(run / "baseline.partial.pt", weights_only=True)
    assert partial["epoch"] == 1
    monkeypatch.undo()
    assert main(["prune", "--run-dir", str(run), "--resume"]) == 0
    done = torch.load(run / "baseline.pt", weights_only=True)
    assert done["complete"] and len(done["history"]) == 2
    assert done["history"][0] == partial["history"][0]  # continued, not restarted
    assert not (run / "baseline.partial.pt").exists()


def test_resume_of_a_finished_run_changes_nothing(finished: Path, tmp_path) -> None:
    run = _copy(finished, tmp_path)
    before = _digest(run)
    assert main(["prune", "--run-dir", str(run), "--resume"]) == 0
    assert _digest(run) == before  # no re-fine-tune, trials stay 3 (not the default 30)


def test_resume_with_a_safe_change_is_recorded(finished: Path, tmp_path) -> None:
    run = _copy(finished, tmp_path)
    search = (run / "search.json").read_bytes()
    assert main(["prune", "--run-dir", str(run), "--resume", "--epochs", "1", "--lr", "0.02"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["finetune"]["epochs"] == 1 and config["finetune"]["lr"] == 0.02
    assert config["search"]["trials"] == 3
    assert (run / "search.json").read_bytes() == search  # the finished search is kept
    assert json.loads((run / "report.json").read_text())["finetune"]["epochs"] == 1


def test_interrupted_finetune_of_a_trial_keeps_pruned_consistent(
    finished: Path, tmp_path, monkeypatch, capsys
) -> None:
    run = _copy(finished, tmp_path)
    report = json.loads((run / "report.json").read_text())
    history = json.loads((run / "search.json").read_text())["history"]
    other = next(h["number"] for h in history if h["number"] != report["search"]["best_trial"])
    pruned = (run / "pruned.pt").read_bytes()
    _interrupt_at(monkeypatch, 2)
    assert main(["finetune", str(run), "--trial", str(other)]) == 130
    assert (run / "pruned.pt").read_bytes() == pruned
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["top1"] == pytest.approx(report["pruned"]["accuracy"], abs=1e-9)


def test_nan_in_the_first_epoch_does_not_claim_saved_weights(tmp_path) -> None:
    gen = torch.Generator().manual_seed(0)
    nan = [(torch.full((8, 4), float("nan")), torch.randint(0, 3, (8,), generator=gen))]
    ckpt = tmp_path / "pruned.partial.pt"
    with pytest.raises(IAPruneError, match="no epoch finished") as err:
        finetune(nn.Linear(4, 3), nan, nan, FinetuneConfig(epochs=2), checkpoint=ckpt)
    assert "kept in" not in str(err.value)
    assert not ckpt.exists()


def test_model_from_a_python_file(tmp_path) -> None:
    path = tmp_path / "nets" / "my_net.py"
    path.parent.mkdir()
    path.write_text(
        "import torch.nn as nn\n"
        "def make(num_classes, in_channels):\n"
        "    return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.AdaptiveAvgPool2d(1),\n"
        "                         nn.Flatten(), nn.Linear(4, num_classes))\n"
    )
    recipe = resolve_model(f"{path}:make", num_classes=7, in_channels=2)
    assert recipe.build()(torch.zeros(1, 2, 8, 8)).shape == (1, 7)


def test_pad_to_sets_the_input_size() -> None:
    session = Session(None, RunConfig(model="test_vgg", dataset="digits", pad_to=12))
    assert session.input_shape == (1, 12, 12)


def test_read_only_run_directory_is_refused_before_work(
    finished: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(os, "access", lambda *_a, **_k: False)
    assert main(["prune", "--run-dir", str(finished), "--resume", "--trials", "5"]) == 2
    assert "read-only" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_parent_is_refused(tmp_path, capsys) -> None:
    parent = tmp_path / "ro"
    parent.mkdir(mode=0o555)
    assert main(["prune", "--run-dir", str(parent / "run"), *TINY]) == 2
    assert "read-only" in capsys.readouterr().err


def test_sigkill_during_baseline_then_resume_with_fewer_epochs(tmp_path) -> None:
    import signal
    import time

    run = tmp_path / "killed"
    args = [*TINY, "--baseline-epochs", "200"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "iaprune.cli.main", "prune", "--run-dir", str(run), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    deadline = time.monotonic() + 180
    while not (run / "baseline.partial.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (run / "baseline.partial.pt").exists() and not (run / "baseline.pt").exists()
    done = torch.load(run / "baseline.partial.pt", weights_only=True)["epoch"]
    assert (
        main(["prune", "--run-dir", str(run), "--resume", "--baseline-epochs", str(done + 1)]) == 0
    )
    baseline = torch.load(run / "baseline.pt", weights_only=True)
    assert baseline["complete"] and len(baseline["history"]) == done + 1
    config = json.loads((run / "config.json").read_text())
    assert config["baseline_epochs"] == done + 1


def test_sampled_batches_do_not_depend_on_what_ran_before(tmp_path) -> None:
    # the trials' recovery batches of a resumed run must equal the uninterrupted run's,
    # though the baseline or earlier draws consumed the loader's and torch's RNG
    config = RunConfig(model="test_vgg", width_mult=1.0)
    session = Session.create(tmp_path / "run", config)
    first = session.batches("train", 3)
    torch.rand(100)
    again = session.batches("train", 3)
    fresh = Session(session.run, config).batches("train", 2)
    for (x, y), (x2, y2) in zip(first, again, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    for (x, y), (x2, y2) in zip(first, fresh, strict=False):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(first[0][1], first[1][1])  # a shuffled stream, not one batch


def test_finetune_depends_on_its_seed_only(tmp_path) -> None:
    # the benchmark fine-tunes torch-pruning's models (no spec) with the row's seed; equal
    # seeds must give equal weights whatever drew from the RNG before, other seeds differ
    config = RunConfig(model="test_vgg", width_mult=1.0, finetune=FinetuneConfig(epochs=1))
    session = Session.create(tmp_path / "run", config)
    model = session.build_model()

    def tuned(seed: int | None) -> list[torch.Tensor]:
        copy = session.build_model()
        copy.load_state_dict(model.state_dict())
        torch.rand(37)  # randomness used before must not matter
        session.finetune(copy, seed=seed)
        return [p.detach().clone() for p in copy.parameters()]

    default, same, other = tuned(None), tuned(config.seed), tuned(config.seed + 1)
    assert all(torch.equal(a, b) for a, b in zip(default, same, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(same, other, strict=True))


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("spec.json", lambda text: text[:20]),
        ("finetune.json", lambda text: text[:20]),
        ("spec.json", lambda text: "[]"),
        ("finetune.json", lambda text: "[]"),
    ],
    ids=["spec truncated", "finetune truncated", "spec []", "finetune []"],
)
def test_resume_rebuilds_a_corrupt_finished_artefact_from_pruned_pt(
    finished: Path, tmp_path, name: str, damage
) -> None:
    run = _copy(finished, tmp_path)
    before = _digest(run)
    (run / name).write_text(damage((run / name).read_text()))
    assert main(["prune", "--run-dir", str(run), "--resume"]) == 0
    assert _digest(run) == before  # rebuilt byte for byte, nothing else rewritten


def test_resume_rebuilds_a_report_json_of_the_wrong_shape(finished: Path, tmp_path) -> None:
    run = _copy(finished, tmp_path)
    (run / "report.json").write_text("[]")
    assert main(["prune", "--run-dir", str(run), "--resume"]) == 0
    report = json.loads((run / "report.json").read_text())
    expected = json.loads((finished / "report.json").read_text())
    assert report["pruned"]["accuracy"] == expected["pruned"]["accuracy"]
    assert (run / "pruned.pt").read_bytes() == (finished / "pruned.pt").read_bytes()
