"""``benchmarks/finalist_schedules.py``: finalist schedules replayed on fidelity rows."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "finalist_schedules.py"


def _rows(path: Path, *, drop: str | None = None, spread: float = 0.0) -> None:
    """Two warm starts and four random candidates whose true order is their index.

    ``bn``, ``kd200`` and ``kd400`` rank them truly; ``kd50`` and ``kd100`` reversed.
    ``spread``: the two fine-tune seeds' accuracies lie that far either side of the mean.
    """
    lines = []
    for i in range(6):
        truth = 0.80 + 0.01 * i
        scores = {o: [truth, truth] for o in ("bn", "kd200", "kd400")}
        scores |= {o: [-truth, -truth] for o in ("kd50", "kd100")}
        if drop:
            scores.pop(drop)
        row = {
            "key": f"vgg16_0.15_c{i}",
            "scores": scores,
            "val_top1": truth,
            "val_seeds": [truth - spread, truth + spread],
            "test_top1": truth,
            "warm_start": ["uniform", "global"][i] if i < 2 else None,
        }
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(SCRIPT), "--out", str(out), "--prefix", "vgg16_0.15"]
    args += ["--boot", "40", "--boot-sets", "10", *extra]
    return subprocess.run(args, capture_output=True, text=True, check=False)


def _table(out: Path) -> dict[str, dict[str, str]]:
    with (out / "finalist_schedules_vgg16_0.15.csv").open() as fh:
        return {r["schedule"]: r for r in csv.DictReader(fh)}


def test_schedules_are_replayed_with_their_regret_and_cost(tmp_path: Path) -> None:
    _rows(tmp_path / "fidelity.jsonl")
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    table = _table(tmp_path)
    # a true ranking picks the set's best; a reversed one its worst (every set holds
    # candidates 0 and 1 plus three of 2-5, so the worst is candidate 0, the best >= 4)
    assert float(table["bn"]["val"]) == 0 and float(table["bn"]["hit"]) == 1
    assert float(table["bn > kd200 x2"]["val"]) == 0
    today = float(table["kd100 (today)"]["val"])
    assert today >= 4.0 and float(table["kd100 (today)"]["hit"]) == 0
    # kd100 keeps the two worst, kd200 picks the better: candidate 1, one point above 0
    assert abs(float(table["kd100 > kd200 x2"]["val"]) - (today - 1.0)) < 1e-9
    # 5 finalists: kd100 for all; kd50 for 5, +50 for 4, +100 for 2 (continued training)
    assert float(table["kd100 (today)"]["steps"]) == 500
    assert float(table["kd50 > kd100 x4 > kd200 x2"]["steps"]) == 5 * 50 + 4 * 50 + 2 * 100
    assert float(table["bn > kd400 x2"]["steps"]) == 2 * 400
    # the margin rule's two noise scores at the last rung; today's total is the bar
    assert float(table["kd100 (today)"]["with_noise"]) == 500 + 200
    assert float(table["bn > kd200 x2"]["with_noise"]) == 400 + 400
    assert table["bn > kd100 x4"]["within_cost"] == "True"
    assert table["bn > kd400 x2"]["within_cost"] == "False"
    # exact ground truth: every bootstrap replicate agrees on the sign for bn
    assert float(table["bn"]["vs_today_high"]) < 0
    assert "kd100 (today)" in (tmp_path / "finalist_schedules_vgg16_0.15.md").read_text()


def test_every_finalist_set_is_replayed_when_there_are_few(tmp_path: Path) -> None:
    # C(4, 3) = 4 sets: the regret is exact, whatever --sets and --seed say
    _rows(tmp_path / "fidelity.jsonl")
    assert _run(tmp_path, "--sets", "10", "--seed", "1").returncode == 0
    first = _table(tmp_path)["kd100 (today)"]["val"]
    assert _run(tmp_path, "--sets", "4", "--seed", "2").returncode == 0
    assert _table(tmp_path)["kd100 (today)"]["val"] == first
    # sets {0,1}+{2,3,4}, {2,3,5}, {2,4,5}, {3,4,5}: best 4, 5, 5, 5 against candidate 0
    assert abs(float(first) - (4 + 5 + 5 + 5) / 4) < 1e-9


def test_finetune_noise_widens_the_interval(tmp_path: Path) -> None:
    _rows(tmp_path / "fidelity.jsonl")
    assert _run(tmp_path).returncode == 0
    exact = _table(tmp_path)["kd100 > kd200 x2"]
    _rows(tmp_path / "fidelity.jsonl", spread=0.02)  # 2-pp seed spread: noise >> differences
    assert _run(tmp_path).returncode == 0
    noisy = _table(tmp_path)["kd100 > kd200 x2"]
    width = float(noisy["vs_today_high"]) - float(noisy["vs_today_low"])
    assert width > float(exact["vs_today_high"]) - float(exact["vs_today_low"])
    assert "spread between seeds" in (tmp_path / "finalist_schedules_vgg16_0.15.md").read_text()


def test_rows_without_an_option_are_refused_in_one_line(tmp_path: Path) -> None:
    _rows(tmp_path / "fidelity.jsonl", drop="kd400")
    done = _run(tmp_path)
    assert done.returncode == 2
    assert "kd400 are missing" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "finalist_schedules_vgg16_0.15.csv").exists()
