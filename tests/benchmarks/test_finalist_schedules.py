"""``benchmarks/finalist_schedules.py``: finalist schedules replayed on fidelity rows."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "finalist_schedules.py"


def _rows(path: Path, *, drop: str | None = None) -> None:
    """Two warm starts and four random candidates whose true order is their index.

    ``bn``, ``kd200`` and ``kd400`` rank them truly; ``kd50`` and ``kd100`` reversed.
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
            "test_top1": truth,
            "warm_start": ["uniform", "global"][i] if i < 2 else None,
        }
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")


def _run(out: Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(SCRIPT), "--out", str(out), "--prefix", "vgg16_0.15"]
    args += ["--sets", "30", "--boot", "5", "--boot-sets", "10"]
    return subprocess.run(args, capture_output=True, text=True, check=False)


def test_schedules_are_replayed_with_their_regret_and_cost(tmp_path: Path) -> None:
    _rows(tmp_path / "fidelity.jsonl")
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    with (tmp_path / "finalist_schedules.csv").open() as fh:
        table = {r["schedule"]: r for r in csv.DictReader(fh)}
    # a true ranking picks the set's best; a reversed one its worst (every set holds
    # candidates 0 and 1 plus three of 2-5, so the worst is candidate 0, the best >= 4)
    assert float(table["bn"]["val"]) == 0 and float(table["bn"]["hit"]) == 1
    assert float(table["bn > kd200 x4"]["val"]) == 0
    today = float(table["kd100 (today)"]["val"])
    assert today >= 4.0 and float(table["kd100 (today)"]["hit"]) == 0
    # kd100 keeps the two worst, kd200 picks the better: candidate 1, one point above 0
    assert abs(float(table["kd100 > kd200 x2"]["val"]) - (today - 1.0)) < 1e-9
    # 5 finalists: kd100 for all; kd50 for 5, +50 for 4, +100 for 2 (continued training)
    assert float(table["kd100 (today)"]["steps"]) == 500
    assert float(table["kd50 > kd100 x4 > kd200 x2"]["steps"]) == 5 * 50 + 4 * 50 + 2 * 100
    assert float(table["bn > kd400 x2"]["steps"]) == 2 * 400
    assert "kd100 (today)" in (tmp_path / "finalist_schedules.md").read_text()


def test_rows_without_an_option_are_refused_in_one_line(tmp_path: Path) -> None:
    _rows(tmp_path / "fidelity.jsonl", drop="kd400")
    done = _run(tmp_path)
    assert done.returncode == 2
    assert "missing: kd400" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "finalist_schedules.csv").exists()
