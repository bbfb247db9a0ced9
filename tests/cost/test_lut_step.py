"""A latency table's channel step (``multiple``) and the sizes of its calibration models.

A runtime is not linear between multiples of its vector width, so a table predicts the
widths on its grid's step; a run uses only a table built on its own ``--round-to``. The
calibration models span every model size, not only about half the width.
"""

from __future__ import annotations

import statistics
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from iaprune.cli.main import main
from iaprune.config import CostConfig
from iaprune.cost.lut import LatencyTable, LatencyTableWarning, default_table_path, load_or_build
from iaprune.cost.lut.fit import calibration_keeps
from iaprune.cost.lut.policy import run_table
from iaprune.models import create_model
from iaprune.pruning import find_groups

SHAPE = (3, 16, 16)
SMALLEST: dict[str, Any] = {"grid": 2, "warmup": 0, "repeats": 1}


@pytest.fixture(scope="module")
def wide() -> nn.Module:
    torch.manual_seed(0)
    return create_model("test_vgg", num_classes=5, in_channels=3, width_mult=2.0).eval()


@pytest.fixture(scope="module")
def wide_groups(wide: nn.Module) -> list:
    return find_groups(wide, torch.zeros((1, *SHAPE)))


def _mean_ratio(keep: dict[str, int], groups: list) -> float:
    return statistics.mean(keep[g.name] / g.channels for g in groups)


def test_calibration_models_span_every_size(wide_groups: list) -> None:
    keeps = calibration_keeps(wide_groups, 8, 0.05, seed=3)
    sizes = sorted(_mean_ratio(k, wide_groups) for k in keeps)
    assert sizes[0] < 0.25 and sizes[-1] > 0.75  # small and large models both present
    # independent per-group ratios (the old draw) average about 0.5 in every model
    assert sizes[-1] - sizes[0] > 0.5
    assert keeps == calibration_keeps(wide_groups, 8, 0.05, seed=3)  # seeded
    assert keeps != calibration_keeps(wide_groups, 8, 0.05, seed=4)
    for keep in keeps:
        for g in wide_groups:
            assert 1 <= keep[g.name] <= g.channels


def test_calibration_models_keep_the_step(wide_groups: list) -> None:
    for keep in calibration_keeps(wide_groups, 6, 0.05, seed=0, multiple=4):
        for g in wide_groups:
            if g.channels >= 4:
                assert keep[g.name] % 4 == 0 or keep[g.name] == g.channels


def test_grid_is_built_on_the_given_step(wide, wide_groups) -> None:
    table = LatencyTable.build(wide, SHAPE, wide_groups, multiple=2, **SMALLEST)
    assert table.meta["multiple"] == 2
    default = LatencyTable.build(wide, SHAPE, wide_groups, **SMALLEST)
    assert default.meta["multiple"] == 8  # the torch backend's preferred multiple


def test_a_table_on_another_step_is_rebuilt(wide, wide_groups, tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    load_or_build(path, wide, SHAPE, wide_groups, **SMALLEST)  # the backend's step, 8
    with warnings.catch_warnings():
        warnings.simplefilter("error", LatencyTableWarning)
        same = load_or_build(path, wide, SHAPE, wide_groups, multiple=8, **SMALLEST)
    assert not same.built_now
    with pytest.warns(LatencyTableWarning, match="multiple=8.*now multiple=2.*rebuilding"):
        table = load_or_build(path, wide, SHAPE, wide_groups, multiple=2, **SMALLEST)
    assert table.built_now and LatencyTable.load(path).meta["multiple"] == 2
    with pytest.warns(LatencyTableWarning, match="multiple=2.*now multiple=8"):
        load_or_build(path, wide, SHAPE, wide_groups, **SMALLEST)


def test_shared_path_names_a_step_other_than_the_backends(wide, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("IAPRUNE_LUT_DIR", str(tmp_path))
    plain = default_table_path(wide, SHAPE, backend="torch")
    assert plain is not None and "-m" not in plain.name
    assert default_table_path(wide, SHAPE, backend="torch", multiple=8) == plain
    stepped = default_table_path(wide, SHAPE, backend="torch", multiple=2)
    assert stepped is not None and stepped.name.endswith("-m2.json")


def test_run_table_uses_the_runs_step(wide, wide_groups, tmp_path: Path) -> None:
    config = CostConfig(latency="predicted", backend="torch")
    table = run_table(
        wide, SHAPE, wide_groups, config, fallback=tmp_path / "t.json", writable=True, multiple=4
    )
    assert table.meta["multiple"] == 4 and table.path == tmp_path / "t.json"


def test_cli_refuses_a_bad_step_before_building(tmp_path: Path, capsys) -> None:
    out = tmp_path / "t.json"
    args = ["latency-table", "--model", "test_vgg", "--round-to", "0", "--output", str(out)]
    assert main(args) == 2
    assert "--round-to must be >= 1" in capsys.readouterr().err
    assert not out.exists()


def test_cli_builds_on_the_step(tmp_path: Path, capsys) -> None:
    out = tmp_path / "t.json"
    args = ["latency-table", "--model", "test_vgg", "--num-classes", "5", "--input-size", "16"]
    args += ["--grid", "2", "--warmup", "0", "--repeats", "1", "--calibrate", "0"]
    assert main([*args, "--round-to", "2", "--output", str(out)]) == 0
    assert LatencyTable.load(out).meta["multiple"] == 2
