"""A latency table's channel step (``multiple``) and the sizes of its calibration models.

A runtime is not linear between multiples of its vector width, so a table predicts the
widths on its grid's step; a run uses only a table built on its own ``--round-to``. The
calibration models span every model size, not only about half the width.
"""

from __future__ import annotations

import json
import logging
import statistics
import warnings
from pathlib import Path
from types import SimpleNamespace
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


def test_calibration_models_span_every_size() -> None:
    """Each model's typical width lies in its own stratum of [min_ratio, 1].

    Independent per-group ratios (the old draw) average about 0.53 over 40 groups in every
    model (standard deviation about 0.04), so no small and no large model is timed.
    """
    groups = [SimpleNamespace(name=f"g{i}", channels=64) for i in range(40)]
    keeps = calibration_keeps(groups, 8, 0.05, seed=3)  # type: ignore[arg-type]
    sizes = sorted(_mean_ratio(k, groups) for k in keeps)
    assert sizes[0] < 0.2 and sizes[-1] > 0.8
    assert statistics.pstdev(sizes) > 0.2  # the old draw: about 0.04
    assert keeps == calibration_keeps(groups, 8, 0.05, seed=3)  # type: ignore[arg-type]
    assert keeps != calibration_keeps(groups, 8, 0.05, seed=4)  # type: ignore[arg-type]
    assert all(1 <= keep[g.name] <= g.channels for keep in keeps for g in groups)


def test_calibration_models_keep_the_step(wide_groups: list) -> None:
    for keep in calibration_keeps(wide_groups, 6, 0.05, seed=0, multiple=4):
        for g in wide_groups:
            if g.channels >= 4:
                assert keep[g.name] % 4 == 0 or keep[g.name] == g.channels


def test_grid_is_built_on_the_given_step(wide, wide_groups) -> None:
    table = LatencyTable.build(wide, SHAPE, wide_groups, multiple=2, **SMALLEST)
    assert table.meta["multiple"] == 2
    assert "calibration_draw" not in table.meta  # no calibration models
    calibrated = LatencyTable.build(wide, SHAPE, wide_groups, calibrate=2, **SMALLEST)
    assert calibrated.meta["calibration_draw"] == "sizes"
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
    assert "channel step 2" in capsys.readouterr().out


def _latency_run(round_to: int) -> Any:
    from iaprune import ObjectiveConfig, RunConfig, SearchConfig

    objective = ObjectiveConfig(max_latency_ms=1e4)
    return RunConfig(
        model="test_vgg",
        baseline_epochs=0,
        search=SearchConfig(trials=1, objective=objective, round_to=round_to),
        cost=CostConfig(latency="predicted", warmup=0, repeats=1),
    )


def test_a_run_builds_its_table_on_its_step_and_a_resume_keeps_it(
    monkeypatch, tmp_path: Path, caplog
) -> None:
    from iaprune import Session
    from iaprune.rundir import release_locks

    monkeypatch.delenv("IAPRUNE_LUT_DIR", raising=False)
    with caplog.at_level(logging.WARNING, logger="iaprune.search.plan"):
        session = Session.create(tmp_path / "run", _latency_run(4))
    assert any(
        "--round-to 4 keeps widths that are not multiples of 8" in m for m in caplog.messages
    )
    model = session.build_model().eval()
    session.trial_cost(model, session.pruner(model))
    path = tmp_path / "run" / "latency_table.json"
    assert LatencyTable.load(path).meta["multiple"] == 4
    release_locks()
    # a run started before tables had a step: its table says 8; the resumed run keeps it
    data = json.loads(path.read_text())
    data["meta"]["multiple"] = 8
    path.write_text(json.dumps(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LatencyTableWarning)
        resumed = Session.create(tmp_path / "run", _latency_run(4), resume=True)
        table = resumed.latency_table(model, resumed.pruner(model))
    assert not table.built_now and table.meta["multiple"] == 8
    release_locks()
    fresh = Session.create(tmp_path / "new", _latency_run(4))
    fresh_path = tmp_path / "new" / "latency_table.json"
    fresh_path.write_text(json.dumps(data))  # a new run does not use a table on another step
    with pytest.warns(LatencyTableWarning, match="multiple=8.*now multiple=4"):
        again = fresh.latency_table(model, fresh.pruner(model))
    assert again.built_now and again.meta["multiple"] == 4
    release_locks()


def test_narrow_groups_get_points_on_both_sides_of_each_vector_block() -> None:
    from iaprune.cost.lut import channel_grid, grid_ratios

    ratios = grid_ratios(7)
    plain = channel_grid(24, ratios, multiple=2, strict=True)
    cornered = channel_grid(24, ratios, multiple=2, strict=True, vector=16)
    assert 18 not in plain and {16, 18} <= set(cornered) and set(plain) <= set(cornered)
    # nothing to add on the vector's own step, or to a group many vectors wide
    assert channel_grid(24, ratios, multiple=16, strict=True, vector=16) == [16, 24]
    wide = channel_grid(512, ratios, multiple=2, strict=True)
    assert channel_grid(512, ratios, multiple=2, strict=True, vector=16) == wide


def test_profiled_samples_and_layer_grids_share_the_corners(wide, wide_groups) -> None:
    from iaprune.cost.lut import grid_ratios
    from iaprune.cost.lut.plan import plan_layer
    from iaprune.cost.lut.profile import sample_keeps
    from iaprune.cost.lut.trace import trace_layers

    ratios = grid_ratios(7)
    sites = trace_layers(wide, SHAPE)
    plans = [plan_layer(s, wide_groups, ratios, 2, strict=True, vector=16) for s in sites]
    keeps = sample_keeps(wide_groups, ratios, 64, seed=0, multiple=2, vector=16)
    for group in wide_groups:
        if 16 < group.channels <= 32:
            grid = {p.out_grid for p in plans if p.out_group == group.name}
            assert all(16 in g and 18 in g for g in grid)
            assert {16, 18} <= {k[group.name] for k in keeps}
