"""``benchmarks/paired.py``: per-seed differences between iaprune and the other methods."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "paired.py"
FIELDS = ("model", "budget", "method", "seed", "test_top1", "source")


def _write(path: Path, rows: list[tuple[str, str, str, int, float, str]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        w.writerows(rows)
    return path


def _run(csv_path: Path, *select: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(SCRIPT), "--csv", str(csv_path)]
    for s in select:
        args += ["--select", s]
    return subprocess.run(args, capture_output=True, text=True, check=False)


def test_differences_are_paired_by_seed(tmp_path: Path) -> None:
    rows = [
        ("vgg16", "0.5", "iaprune", 0, 0.90, "new"),
        ("vgg16", "0.5", "iaprune", 1, 0.80, "new"),
        ("vgg16", "0.5", "iaprune", 2, 0.85, "new"),
        ("vgg16", "0.5", "uniform", 0, 0.89, "old"),
        ("vgg16", "0.5", "uniform", 1, 0.79, "old"),
        ("vgg16", "0.5", "uniform", 2, 0.86, "old"),
        ("vgg16", "0.5", "uniform", 3, 0.10, "old"),  # no iaprune row at seed 3: not paired
        ("vgg16", "0.5", "uniform", 0, 0.50, "other"),  # another source: not picked
    ]
    out = _run(_write(tmp_path / "runs.csv", rows), "new:iaprune", "old:uniform")
    assert out.returncode == 0, out.stderr
    means, paired = out.stdout.split("\n\n")
    assert "| vgg16 | 50% | iaprune | 3 | **85.00 ± 5.00** |" in means
    assert "| vgg16 | 50% | uniform | 4 | 66.00 ± 37.57 |" in means
    line = next(x for x in paired.splitlines() if "| uniform |" in x)
    cells = [c.strip() for c in line.strip("|").split("|")]
    # differences +1, +1, -1 pp: mean 1/3, sd 1.155, t(0.975, 2) = 4.303
    assert cells[:6] == ["vgg16", "50%", "uniform", "3", "+0.33", "1.15"]
    assert cells[6] == "[-2.54, +3.20]"
    assert cells[7] == "2 / 0 / 1"


def test_a_row_picked_twice_is_refused(tmp_path: Path) -> None:
    rows = [
        ("vgg16", "0.5", "uniform", 0, 0.89, "run a"),
        ("vgg16", "0.5", "uniform", 0, 0.88, "run b"),
    ]
    out = _run(_write(tmp_path / "runs.csv", rows), "run:uniform")
    assert out.returncode != 0
    assert "picked twice" in out.stderr


@pytest.mark.parametrize("spec", ["uniform", ":uniform", "run:"])
def test_a_malformed_selection_is_refused(tmp_path: Path, spec: str) -> None:
    out = _run(_write(tmp_path / "runs.csv", []), spec)
    assert out.returncode != 0
    assert "SOURCE_PREFIX:METHOD" in out.stderr


def test_the_best_of_several_methods_is_the_one_with_the_highest_mean(tmp_path: Path) -> None:
    path = tmp_path / "search_value_runs.csv"
    with path.open("w", newline="") as f:  # search_value.py's CSV: a commit, no source
        w = csv.writer(f)
        w.writerow(("model", "budget", "method", "seed", "test_top1", "commit"))
        for seed, (ours, low, high) in enumerate([(0.90, 0.88, 0.91), (0.92, 0.89, 0.90)]):
            w.writerow(("resnet56", "0.25", "iaprune", seed, ours, "abc1234"))
            w.writerow(("resnet56", "0.25", "uniform", seed, low, "abc1234"))
            w.writerow(("resnet56", "0.25", "ranking", seed, high, "abc1234"))
            w.writerow(("resnet56", "0.25", "ranking", seed, 0.10, "fff0000"))  # other commit
    args = [sys.executable, str(SCRIPT), "--csv", str(path), "--select"]
    args += ["abc:iaprune,uniform,ranking", "--best-of", "uniform,ranking,knapsack"]
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if "best of" in x)
    cells = [c.strip() for c in line.strip("|").split("|")]
    # ranking's mean (90.5) beats uniform's (88.5); knapsack has no rows. -1, +2 pp: mean +0.5
    assert cells[2] == "best of uniform, ranking, knapsack (ranking)"
    assert cells[3:5] == ["2", "+0.50"]
    assert cells[7] == "1 / 0 / 1"
