"""One timing-settings object: validation, overrides, the run config, the shared table path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from iaprune.cli.main import main
from iaprune.config import CostConfig
from iaprune.cost import (
    MeasuredCostModel,
    TimingSettings,
    create_cost_model,
    default_table_path,
    list_cost_models,
    load_or_build,
    measure_cost,
)
from iaprune.cost.lut import TABLE_TIMING
from iaprune.errors import IAPruneError
from iaprune.models import create_model
from iaprune.pruning import find_groups
from iaprune.timing import resolve_timing


@pytest.mark.parametrize(
    "change", [{"repeats": 0}, {"warmup": -1}, {"batch_size": 0}, {"threads": 0}]
)
def test_invalid_settings_are_refused(change: dict[str, int]) -> None:
    with pytest.raises(IAPruneError):
        TimingSettings(**change)
    with pytest.raises(IAPruneError):
        TimingSettings().with_(**change)


def test_overrides_and_positional_order() -> None:
    assert TimingSettings(4, None, 0, 2, "cpu") == TimingSettings(
        batch_size=4, threads=None, warmup=0, repeats=2
    )
    base = TimingSettings(backend="onnxruntime", repeats=7)
    assert resolve_timing(base, batch_size=3) == TimingSettings(
        batch_size=3, repeats=7, backend="onnxruntime"
    )
    assert resolve_timing() == TimingSettings()
    with pytest.raises(TypeError):
        resolve_timing(base, grid=3)


def test_cost_config_is_the_timing_settings() -> None:
    cfg = CostConfig(backend="torchscript", batch_size=2, repeats=4, latency="predicted")
    assert isinstance(cfg, TimingSettings)
    assert type(cfg.timing) is TimingSettings
    assert cfg.timing == TimingSettings(batch_size=2, repeats=4, backend="torchscript")
    assert cfg.with_(repeats=9) == TimingSettings(batch_size=2, repeats=9, backend="torchscript")
    with pytest.raises(IAPruneError, match="latency needs batch size"):
        CostConfig(repeats=0)


def test_one_settings_object_through_cost_and_backends() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU())
    timing = TimingSettings(batch_size=2, warmup=0, repeats=2)
    report = measure_cost(model, (1, 6, 6), latency=True, timing=timing)
    assert report.latency_env is not None
    assert (report.latency_env["batch_size"], report.latency_env["repeats"]) == (2, 2)
    measured = create_cost_model("measured", timing)
    assert isinstance(measured, MeasuredCostModel) and measured.timing == timing
    assert MeasuredCostModel("torch", repeats=2).timing == TimingSettings(repeats=2)
    assert set(list_cost_models()) >= {"static", "measured", "predicted"}


def test_cli_and_api_share_the_default_table_path(monkeypatch, tmp_path: Path, capsys) -> None:
    """``iaprune latency-table`` without --output writes where ``--latency predicted`` looks."""
    monkeypatch.setenv("IAPRUNE_LUT_DIR", str(tmp_path))
    args = ["latency-table", "--model", "test_vgg", "--width-mult", "1", "--input-size", "16"]
    fast = ["--grid", "2", "--warmup", "0", "--repeats", "1"]
    assert main([*args, *fast]) == 0
    capsys.readouterr()
    torch.manual_seed(0)
    model = create_model("test_vgg", num_classes=10, in_channels=3).eval()
    shape = (3, 16, 16)
    # the pipeline's table timing: the run's CostConfig with the table's per-point repeats
    timing = CostConfig().with_(warmup=TABLE_TIMING.warmup, repeats=TABLE_TIMING.repeats)
    path = default_table_path(model, shape, timing)
    assert path.parent == tmp_path and path.is_file()
    table = load_or_build(None, model, shape, find_groups(model, torch.zeros((1, *shape))), timing)
    assert not table.built_now and table.path == path


def test_prune_keeps_its_table_in_the_run_dir_without_a_shared_dir(
    monkeypatch, tmp_path: Path
) -> None:
    """Without --latency-table or IAPRUNE_LUT_DIR, nothing is written outside the run."""
    from iaprune import ObjectiveConfig, RunConfig, SearchConfig, Session

    monkeypatch.delenv("IAPRUNE_LUT_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = RunConfig(
        model="test_vgg",
        baseline_epochs=0,
        search=SearchConfig(trials=1, objective=ObjectiveConfig(max_latency_ms=1e4)),
        cost=CostConfig(latency="predicted", warmup=0, repeats=1),
    )
    session = Session.create(tmp_path / "run", config)
    model = session.build_model().eval()
    session.trial_cost(model, session.pruner(model))
    assert (tmp_path / "run" / "latency_table.json").is_file()
    assert not (tmp_path / "home").exists() and not (tmp_path / "cache").exists()
