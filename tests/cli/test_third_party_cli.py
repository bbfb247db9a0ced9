"""Third-party layers through the CLI (issue 23): runs that crashed now finish and reload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iaprune.cli.main import main
from tests.conftest import tiny_args

FACTORIES = """
from tests.pruning.nets import GhostCNN, SplitConvCNN

def ghost(num_classes, in_channels):
    return GhostCNN(in_channels, num_classes)

def split(num_classes, in_channels):
    return SplitConvCNN(in_channels, num_classes)
"""

TINY = tiny_args(model=None, width_mult=None)


@pytest.mark.parametrize(
    ("factory", "budget"),
    [
        ("ghost", "0.5"),  # a spec emptied a conv: traceback in the budget check
        ("split", "0.8"),  # stored split sizes: every pruned model failed in forward
    ],
)
def test_model_torch_pruning_cannot_fully_follow_runs_and_reloads(
    factory: str, budget: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models.py"
    models.write_text(FACTORIES)
    run = tmp_path / "run"
    model = ["--model", f"{models}:{factory}", "--trust-code"]
    args = ["prune", "--run-dir", str(run), *model, *TINY, "--max-macs", budget]
    assert main(args) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["pruned"]["macs"] <= float(budget) * report["baseline"]["macs"]
    capsys.readouterr()
    assert main(["evaluate", str(run), "--trust-code"]) == 0
    assert json.loads(capsys.readouterr().out)["macs"] == report["pruned"]["macs"]
