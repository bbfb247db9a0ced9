"""The data-loading benchmark runs end to end on a tiny tree and writes its results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "data_loading.py"


def test_smoke_run_lists_the_tree_three_ways_and_measures_the_loader(tmp_path: Path) -> None:
    cmd = [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--classes", "3", "--files"]
    cmd += ["4", "--repeats", "1", "--images", "16", "--data-workers", "0,1", "--threads", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads((tmp_path / "data_loading.json").read_text())
    assert data["listing"]["files"] == 12  # the script asserts all three listings agree
    assert [r["data_workers"] for r in data["loader"]] == [0, 1]
    assert all(r["images_per_s"] > 0 and r["images"] == 14 for r in data["loader"])
    assert "| 12 |" in (tmp_path / "data_loading_results.md").read_text()
