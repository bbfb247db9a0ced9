"""The latency benchmarks use only the public API and run end to end on a tiny model.

Nothing here asserts a timing: the smoke runs check the result files' rows and the
columns that keep results comparable across runs.
"""

from __future__ import annotations

import ast
import csv
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = ("latency_ratio.py", "lut_error.py", "common.py", "retime.py")


def _iaprune_imports(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("iaprune"):
            out += [(str(node.module), alias.name) for alias in node.names]
    return out


@pytest.mark.parametrize("script", SCRIPTS)
def test_imports_only_public_names_of_packages(script: str) -> None:
    """Every ``from iaprune... import name``: a package's ``__all__``, never a private name."""
    imports = _iaprune_imports(BENCH / script)
    assert imports
    for module_name, name in imports:
        module = importlib.import_module(module_name)
        assert hasattr(module, "__path__"), f"{script}: {module_name} is a module, not a package"
        assert not any(part.startswith("_") for part in module_name.split(".")), module_name
        assert name in module.__all__, f"{script}: {module_name}.{name} is not exported"


def _run(script: str, *args: str, out: Path) -> None:
    env = {**os.environ, "IAPRUNE_NO_PROGRESS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=BENCH,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_lut_error_then_latency_ratio_smoke(tmp_path: Path) -> None:
    out = tmp_path / "res"
    tiny = ["--grid", "2", "--calibrate", "4", "--table-repeats", "2", "--warmup", "1"]
    _run(
        "lut_error.py",
        "--backends",
        "torch",
        "--cells",
        "vgg16:0.25:1",
        "--configs",
        "3",
        *tiny,
        "--tag",
        "t",
        out=out,
    )
    rows = _csv(out / "lut_error_torch_t.csv")
    assert len(rows) == 3 and {"model", "abs_pct_error"} <= set(rows[0])
    assert all(float(r["abs_pct_error"]) >= 0 for r in rows)
    assert (out / ".cache" / "lut_error" / "torch-vgg16-w0.25-b1.json").is_file()

    _run(
        "latency_ratio.py",
        "--models",
        "vgg16:0.25",
        "--budgets",
        "0.5",
        "--trials",
        "3",
        "--backends",
        "torch",
        "--batches",
        "1",
        "--cell-seconds",
        "5",
        "--tag",
        "t",
        out=out,
    )
    rows = _csv(out / "latency_ratio_t.csv")
    assert {"model", "backend", "batch", "config", "latency_over_macs_ratio"} <= set(rows[0])
    configs = {r["config"] for r in rows}
    assert configs == {
        "unpruned",
        "uniform@0.5",
        "bo-macs@0.5",
        "bo-latency@0.5",
        "bo-latbudget@0.5",
    }
    unpruned = next(r for r in rows if r["config"] == "unpruned")
    assert float(unpruned["latency_over_macs_ratio"]) == pytest.approx(1.0)
    assert all(float(r["macs_ratio"]) <= 0.5 + 1e-6 for r in rows if r["config"] != "unpruned")
    assert "[" in (out / "latency_ratio_t.md").read_text()  # intervals are reported


def test_lut_error_on_another_step_with_models_of_every_size(tmp_path: Path) -> None:
    """``--multiple`` builds the table on that step; ``--sizes spread`` draws every size."""
    out = tmp_path / "res"
    tiny = ["--grid", "2", "--calibrate", "4", "--table-repeats", "1", "--warmup", "0"]
    cell = ["--backends", "torch", "--cells", "vgg16:0.25:1", "--configs", "4"]
    _run(
        "lut_error.py", *cell, *tiny, "--multiple", "4", "--sizes", "spread", "--tag", "t", out=out
    )
    rows = _csv(out / "lut_error_torch_t_m4_spread.csv")
    assert len(rows) == 4
    table = json.loads((out / ".cache" / "lut_error" / "torch-vgg16-w0.25-b1_m4.json").read_text())
    assert table["meta"]["multiple"] == 4
    macs = sorted(float(r["macs_ratio"]) for r in rows)
    assert macs[-1] - macs[0] > 0.3  # small and large models (the old draw: 0.25-0.30)
    assert "models of every size" in (out / "lut_error_torch_t_m4_spread.md").read_text()
