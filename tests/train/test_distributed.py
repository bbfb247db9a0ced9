"""Data-parallel training under torchrun (gloo, 2 CPU processes) against one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from iaprune.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing"),
]


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        "IAPRUNE_NO_PROGRESS": "1",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    return subprocess.run(
        [*cmd, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _two_and_one(script: str, saved: str, tmp_path: Path) -> tuple[dict, dict]:
    """What ``tests/train/SCRIPT.py`` saves as ``SAVED{world}.pt``: on 2 processes, on 1."""
    import importlib

    res = _torchrun(str(ROOT / "tests" / "train" / f"{script}.py"), str(tmp_path), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    single = tmp_path / "single"
    single.mkdir()
    importlib.import_module(f"tests.train.{script}").main(single)
    two = torch.load(tmp_path / f"{saved}2.pt", weights_only=True)
    return two, torch.load(single / f"{saved}1.pt", weights_only=True)


def test_two_processes_match_one_and_resume_after_a_crash(tmp_path: Path) -> None:
    two, one = _two_and_one("ddp_script", "world", tmp_path)
    for run in ("straight", "resumed"):
        for name, weight in one[run]["state"].items():  # same global batches: float noise only
            torch.testing.assert_close(two[run]["state"][name], weight, atol=1e-6, rtol=1e-5)
        losses = [e["train_loss"] for e in two[run]["history"]]
        assert losses == pytest.approx([e["train_loss"] for e in one[run]["history"]], abs=1e-6)
    # A crash before epoch 3 and a resume from rank 0's checkpoint change nothing.
    for name, weight in two["straight"]["state"].items():
        assert torch.equal(two["resumed"]["state"][name], weight)


def test_sync_bn_makes_two_processes_train_a_batchnorm_vgg16_like_one(tmp_path: Path) -> None:
    """With --sync-bn (the default) BatchNorm sees the global batch: vgg16's losses and
    weights match one process to float64 rounding; without it each process normalises over
    half a batch and the losses differ by about 1e-2."""
    two, one = _two_and_one("ddp_bn_script", "bn_world", tmp_path)

    def gap(run: str) -> float:
        pairs = zip(one[run]["history"], two[run]["history"], strict=True)
        return max(abs(a["train_loss"] - b["train_loss"]) for a, b in pairs)

    assert gap("sync1") < 1e-9
    for name, weight in one["sync1"]["state"].items():
        torch.testing.assert_close(two["sync1"]["state"][name], weight, atol=1e-9, rtol=1e-7)
    assert gap("sync0") > 1e-3  # what --no-sync-bn changes
    # one process is unaffected by the flag
    assert one["sync0"]["history"] == one["sync1"]["history"]


def test_cli_finetune_under_torchrun_matches_one_process(received_run: Path) -> None:
    ddp = received_run.parent / "ddp"
    shutil.copytree(received_run, ddp)
    assert main(["finetune", str(received_run), "--epochs", "2"]) == 0
    res = _torchrun(
        "-m", "iaprune.cli.main", "finetune", str(ddp), "--epochs", "2", cwd=received_run.parent
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("top-1 accuracy") == 1  # rank 0 alone reports
    one = json.loads((received_run / "finetune.json").read_text())["epochs"]
    two = json.loads((ddp / "finetune.json").read_text())["epochs"]
    # float32 rounding flips a few ReLUs between the runs: close, not equal.
    for a, b in zip(one, two, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=0.02)
        assert b["val_top1"] == pytest.approx(a["val_top1"], abs=0.05)
    report_one = json.loads((received_run / "report.json").read_text())["pruned"]
    report_two = json.loads((ddp / "report.json").read_text())["pruned"]
    assert report_two["accuracy"] == pytest.approx(report_one["accuracy"], abs=0.05)
    assert report_two["params"] == report_one["params"]
    assert not (ddp / "pruned.partial.pt").exists()
