"""CLI: a smoke run on digits, reload, resume, and one-line errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from iaprune.cli.main import main
from iaprune.models import create_model
from tests.conftest import tiny_args

FAST = tiny_args(
    model=None, width_mult="0.125", baseline_epochs=2, trials=4, round_to=None, batch_size=None
)
"""The default model, narrow: 4 trials with a 2-epoch baseline."""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["prune", "--run-dir", str(run), *FAST]) == 0
    return run


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_prune_writes_report_with_required_fields(finished_run: Path) -> None:
    report = json.loads((finished_run / "report.json").read_text())
    for key in ("model", "dataset", "baseline", "pruned", "reduction", "channels", "search"):
        assert key in report
    assert report["accuracy_split"] == "test"
    for side in ("baseline", "pruned"):
        assert set(report[side]) >= {"accuracy", "macs", "params", "latency_ms"}
        assert report[side]["latency_ms"] > 0
    assert set(report["reduction"]) >= {"macs", "params", "latency"}
    assert set(report["search"]) >= {"sampler", "trials", "best_trial", "seconds"}
    assert report["search"]["trials"] == 4
    assert report["pruned"]["macs"] <= 0.5 * report["baseline"]["macs"]
    for original, kept in report["channels"].values():
        assert 1 <= kept <= original


def test_pruned_model_reloads_and_reproduces_test_accuracy(finished_run: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["evaluate", str(finished_run)]) == 0
    out = json.loads(capsys.readouterr().out)
    report = json.loads((finished_run / "report.json").read_text())
    assert out["top1"] == pytest.approx(report["pruned"]["accuracy"], abs=1e-9)
    assert out["macs"] == report["pruned"]["macs"]


def test_existing_run_dir_is_refused(finished_run: Path, capsys) -> None:
    assert main(["prune", "--run-dir", str(finished_run), *FAST]) == 2
    assert "--resume" in _error(capsys)


def test_resume_adds_trials_without_losing_finished_ones(finished_run: Path, tmp_path) -> None:
    run = tmp_path / "copy"
    import shutil

    shutil.copytree(finished_run, run)
    before = json.loads((run / "search.json").read_text())["history"]
    assert (
        main(
            [
                "prune",
                "--run-dir",
                str(run),
                "--resume",
                *tiny_args(
                    model=None,
                    width_mult="0.125",
                    baseline_epochs=2,
                    trials=6,
                    repeats=None,
                    bn_batches=None,
                    round_to=None,
                    batch_size=None,
                ),
            ]
        )
        == 0
    )
    after = json.loads((run / "search.json").read_text())["history"]
    assert len(after) == 6 and after[:4] == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "nope"], "unknown model 'nope'; valid: "),
        (["--dataset", "nope"], "unknown dataset 'nope'; valid: "),
        (["--dataset", "fashion-mnist", "--data-root", "/nonexistent/dir"], "/nonexistent/dir"),
        (["--max-macs", "0.0001"], "unreachable"),
        (["--sampler", "nope"], "unknown sampler"),
        (["--importance", "nope"], "unknown importance"),
        (["--max-macs", "3"], "ratio"),
    ],
)
def test_bad_input_gives_one_line_error(args, message, tmp_path, capsys) -> None:
    assert main(["prune", "--run-dir", str(tmp_path / "r"), *FAST, *args]) == 2
    assert message in _error(capsys)


def test_checkpoint_that_does_not_match(tmp_path, capsys) -> None:
    ckpt = tmp_path / "other.pt"
    torch.save(create_model("test_resnet", num_classes=10, in_channels=1).state_dict(), ckpt)
    assert main(["prune", "--run-dir", str(tmp_path / "r"), *FAST, "--checkpoint", str(ckpt)]) == 2
    assert "does not match the model" in _error(capsys)


def test_corrupt_checkpoint(tmp_path, capsys) -> None:
    ckpt = tmp_path / "bad.pt"
    ckpt.write_bytes(b"not a checkpoint")
    assert main(["prune", "--run-dir", str(tmp_path / "r"), *FAST, "--checkpoint", str(ckpt)]) == 2
    assert "cannot read checkpoint" in _error(capsys)


def test_model_without_prunable_conv(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "linear_model.py").write_text(
        "import torch.nn as nn\n"
        "def make(num_classes, in_channels):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, num_classes))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert (
        main(["prune", "--run-dir", str(tmp_path / "r"), *FAST, "--model", "linear_model:make"])
        == 2
    )
    assert "no prunable conv" in _error(capsys)


def test_user_factory_model_runs_end_to_end(tmp_path, monkeypatch) -> None:
    (tmp_path / "user_net.py").write_text(
        "import torch.nn as nn\n"
        "def make(num_classes, in_channels):\n"
        "    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8),\n"
        "        nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),\n"
        "        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    run = tmp_path / "r"
    assert (
        main(["prune", "--run-dir", str(run), *FAST, "--model", "user_net:make", "--round-to", "1"])
        == 0
    )
    report = json.loads((run / "report.json").read_text())
    assert set(report["channels"]) == {"0", "3"}


def test_subprocess_error_has_no_traceback(tmp_path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "iaprune.cli.main",
            "prune",
            "--model",
            "nope",
            "--run-dir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown model")


def test_listing_commands(capsys) -> None:
    assert main(["models"]) == 0
    assert "vgg16" in capsys.readouterr().out.split()
    assert main(["datasets"]) == 0
    assert "digits" in capsys.readouterr().out.split()


def test_pareto_run_then_finetune_a_chosen_point(tmp_path, capsys) -> None:
    run = tmp_path / "p"
    assert main(["prune", "--run-dir", str(run), *FAST, "--objective", "pareto"]) == 0
    report = json.loads((run / "report.json").read_text())
    front = report["pareto"]
    assert front and report["search"]["best_trial"] in {p["number"] for p in front}
    other = front[0]["number"]
    assert main(["finetune", str(run), "--trial", str(other), "--epochs", "1"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["search"]["best_trial"] == other
    assert report["channels"] == {
        k: [report["channels"][k][0], v] for k, v in front[0]["keep"].items()
    }
    capsys.readouterr()
    assert main(["finetune", str(run), "--trial", "999"]) == 2
    assert "trial 999 did not finish" in _error(capsys)


def test_finetune_reports_a_finished_fine_tune_instead_of_training_it_again(
    received_run: Path, caplog
) -> None:
    pruned = received_run / "pruned.pt"
    before = pruned.read_bytes()
    (received_run / "report.json").unlink()  # killed while it reported
    with caplog.at_level("INFO"):
        assert main(["finetune", str(received_run)]) == 0
    assert pruned.read_bytes() == before
    assert "not training again" in caplog.text
    assert "epoch 1/" not in caplog.text
    assert json.loads((received_run / "report.json").read_text())["pruned"]
