"""Latency lookup table: structure, interpolation, widths, files and staleness.

No timing thresholds: measured values are only required to be finite and >= 0.
Tables are tiny (test models at 16x16, 2-3 grid points, 1-2 timed runs per point).
"""

from __future__ import annotations

import json
import math
import random
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from iaprune.cli.main import main
from iaprune.cost import CostModel, TimingSettings, measure_cost
from iaprune.cost.lut import (
    STALE_KEYS,
    LatencyTable,
    LatencyTableWarning,
    LayerEntry,
    architecture_fingerprint,
    channel_grid,
    default_table_path,
    grid_ratios,
    load_or_build,
    predicted_cost,
)
from iaprune.cost.lut.table import MIN_PREDICTION
from iaprune.errors import IAPruneError
from iaprune.models import create_model
from iaprune.pruning import Pruner, find_groups
from tests.conftest import UserCNN

SHAPE = (3, 16, 16)
FAST: dict[str, Any] = {"grid": 3, "warmup": 0, "repeats": 2}
SMALLEST: dict[str, Any] = {"grid": 2, "warmup": 0, "repeats": 1}
"""For the tests of when a stored table is reused or rebuilt (its values do not matter)."""


def _resnet() -> nn.Module:
    torch.manual_seed(0)
    return create_model("test_resnet", num_classes=5, in_channels=3).eval()


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    return _resnet()


@pytest.fixture(scope="module")
def resnet_groups(resnet: nn.Module) -> list:
    return find_groups(resnet, torch.zeros((1, *SHAPE)))


@pytest.fixture(scope="module")
def table(resnet: nn.Module, resnet_groups: list) -> LatencyTable:
    return LatencyTable.build(resnet, SHAPE, resnet_groups, **FAST)


def _random_keep(groups: list, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    return {g.name: rng.randint(1, g.channels) for g in groups}


def _actual_widths(model: nn.Module, shape: tuple[int, ...]) -> dict[str, tuple[int, int]]:
    """(in, out) width of every conv / linear of a (pruned) model."""
    out: dict[str, tuple[int, int]] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            out[name] = (m.in_channels, m.out_channels)
        elif isinstance(m, nn.Linear):
            out[name] = (m.in_features, m.out_features)
    return out


# -- structure ------------------------------------------------------------------------


def test_table_covers_every_layer(table: LatencyTable, resnet: nn.Module) -> None:
    convs = [n for n, m in resnet.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    names = [e.name for e in table.layers]  # execution order
    assert sorted(names) == sorted(convs) and len(names) == len(convs)
    by_name = {e.name: e for e in table.layers}
    assert by_name["conv1"].ops == ("Conv2d", "BatchNorm2d", "ReLU")
    assert by_name["layer1.0.conv2"].ops == ("Conv2d", "BatchNorm2d")  # add + relu follow
    assert by_name["fc"].kind == "linear" and by_name["fc"].ops == ("Linear",)
    assert by_name["layer2.0.conv2"].input_shape == (16, 8, 8)
    for entry in table.layers:
        assert entry.in_grid[-1] == entry.in_full and entry.out_grid[-1] == entry.out_full
        assert all(math.isfinite(v) and v >= 0 for row in entry.ms for v in row)
    assert table.points == sum(len(e.in_grid) * len(e.out_grid) for e in table.layers)
    assert table.meta["batch_size"] == 1 and table.meta["backend"] == "torch"
    assert table.meta["input_shape"] == list(SHAPE)
    assert set(STALE_KEYS) <= set(table.meta)


def test_prediction_is_sum_of_entries_plus_offset(table: LatencyTable, resnet_groups) -> None:
    for seed in range(5):
        keep = _random_keep(resnet_groups, seed)
        entries = table.entries_for(keep)
        assert set(entries) == {e.name for e in table.layers}
        floor = MIN_PREDICTION * table.full_ms
        assert table.predict(keep) == pytest.approx(
            max(sum(entries.values()) + table.offset_ms, floor)
        )
        assert table.predict(keep) == pytest.approx(
            max(table.layer_sum(keep) + table.offset_ms, floor)
        )


def test_a_prediction_is_never_below_the_floor(table: LatencyTable, resnet_groups) -> None:
    """A negative offset fitted on a very fast model must not predict zero or less."""
    smallest = {g.name: 1 for g in resnet_groups}
    table.offset_ms, saved = -10 * table.full_ms, table.offset_ms
    try:
        assert table.predict(smallest) == pytest.approx(MIN_PREDICTION * table.full_ms)
    finally:
        table.offset_ms = saved
    assert table.predict(smallest) > 0


def test_full_width_predicts_measured_full_model(table: LatencyTable, resnet_groups) -> None:
    full = {g.name: g.channels for g in resnet_groups}
    assert table.predict({}) == pytest.approx(table.full_ms)
    assert table.predict(full) == pytest.approx(table.full_ms)
    assert table.predict(None) == pytest.approx(table.full_ms)


def test_widths_follow_groups_like_real_pruning(table: LatencyTable, resnet: nn.Module) -> None:
    pruner = Pruner(resnet, torch.zeros((1, *SHAPE)))
    for seed in range(3):
        keep = _random_keep(pruner.groups, seed)
        assert table.widths(keep) == _actual_widths(pruner.prune(keep), SHAPE)


def test_concat_depthwise_and_uncovered_inputs() -> None:
    """UserCNN: a concat (two groups feed one conv), a depthwise conv, image input."""
    torch.manual_seed(0)
    model = UserCNN().eval()
    pruner = Pruner(model, torch.zeros((1, *SHAPE)))
    table = LatencyTable.build(model, SHAPE, pruner.groups, **FAST)
    kinds = {e.name: e.kind for e in table.layers}
    assert kinds["dw"] == "depthwise" and kinds["head"] == "linear"
    merge = next(e for e in table.layers if e.name == "merge")
    assert set(merge.in_groups) == {"branch_a", "branch_b"}
    for seed in range(3):
        keep = _random_keep(pruner.groups, seed)
        assert table.widths(keep) == _actual_widths(pruner.prune(keep), SHAPE)
        total = sum(table.entries_for(keep).values()) + table.offset_ms
        # a tiny model's fitted offset can be negative: never below the floor
        assert table.predict(keep) == pytest.approx(max(total, MIN_PREDICTION * table.full_ms))


# -- grids and interpolation ---------------------------------------------------------


def test_channel_grid() -> None:
    assert channel_grid(8, grid_ratios(3)) == [1, 4, 8]
    big = channel_grid(512, grid_ratios(7))
    assert big[-1] == 512 and big == sorted(set(big)) and len(big) == 7
    assert all(v % 8 == 0 for v in big)
    assert channel_grid(3, grid_ratios(7)) == [1, 2, 3]
    assert channel_grid(64, [0.5, 1.0], minimum=40) == [40, 64]
    assert grid_ratios(1) == [1.0]


def test_interpolation_exact_at_grid_points(table: LatencyTable) -> None:
    for entry in table.layers:
        for i, cin in enumerate(entry.in_grid):
            for j, cout in enumerate(entry.out_grid):
                assert entry.lookup(cin, cout) == pytest.approx(entry.ms[i][j], abs=1e-12)


def _synthetic(in_grid: tuple[int, ...], out_grid: tuple[int, ...]) -> LayerEntry:
    f = lambda i, o: 0.01 + 0.002 * i + 0.003 * o + 0.0001 * i * o  # noqa: E731
    return LayerEntry(
        name="x",
        kind="conv",
        ops=("Conv2d",),
        input_shape=(in_grid[-1], 4, 4),
        in_full=in_grid[-1],
        out_full=out_grid[-1],
        out_group="g",
        in_groups=("h",),
        in_fixed=0,
        in_mult=1,
        in_grid=in_grid,
        out_grid=out_grid,
        ms=tuple(tuple(f(i, o) for o in out_grid) for i in in_grid),
    )


def test_bilinear_reproduces_bilinear_function() -> None:
    entry = _synthetic((2, 8, 16, 64), (4, 24, 32))
    f = lambda i, o: 0.01 + 0.002 * i + 0.003 * o + 0.0001 * i * o  # noqa: E731
    for cin, cout in [(2, 4), (5, 10), (16, 32), (40, 30), (64, 32), (1, 4), (3, 2)]:
        assert entry.lookup(cin, cout) == pytest.approx(f(cin, cout))
    assert entry.widths({"g": 7, "h": 9}) == (9, 7)


def test_one_point_axis_is_constant() -> None:
    entry = _synthetic((3,), (4, 8))
    assert entry.lookup(3, 6) == pytest.approx((entry.ms[0][0] + entry.ms[0][1]) / 2)
    assert entry.lookup(100, 8) == entry.ms[0][1]


def test_rejects_unknown_group_and_bad_keep(table: LatencyTable) -> None:
    with pytest.raises(IAPruneError, match="no channel group"):
        table.predict({"nope": 3})
    with pytest.raises(IAPruneError, match="outside"):
        table.predict({"conv1": 0})
    with pytest.raises(IAPruneError, match="outside"):
        table.predict({"conv1": 9})


# -- files and staleness ---------------------------------------------------------------


def test_save_load_round_trip(table: LatencyTable, resnet_groups, tmp_path: Path) -> None:
    path = table.save(tmp_path / "sub" / "t.json")
    assert path.is_file() and table.path == path
    loaded = LatencyTable.load(path)
    assert loaded.to_dict() == table.to_dict()
    assert loaded.path == path and not loaded.built_now
    keep = _random_keep(resnet_groups, 1)
    assert loaded.predict(keep) == table.predict(keep)
    assert loaded.entries_for(keep) == table.entries_for(keep)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(IAPruneError, match="does not exist"):
        LatencyTable.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(IAPruneError, match="cannot read"):
        LatencyTable.load(bad)
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(IAPruneError, match="not an iaprune latency table"):
        LatencyTable.load(bad)


def test_load_or_build_reuses_valid_table(resnet, resnet_groups, tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    first = load_or_build(path, resnet, SHAPE, resnet_groups, **FAST)
    assert first.built_now and path.is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LatencyTableWarning)
        again = load_or_build(path, resnet, SHAPE, resnet_groups, **{**FAST, "repeats": 1})
    assert not again.built_now
    assert again.to_dict() == first.to_dict()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"batch_size": 2}, "batch_size=1.*now batch_size=2"),
        ({"threads": 2}, "threads=1.*now threads=2"),
    ],
)
def test_stale_settings_rebuild_with_warning(
    resnet, resnet_groups, tmp_path: Path, change: dict[str, int], match: str
) -> None:
    path = tmp_path / "t.json"
    load_or_build(path, resnet, SHAPE, resnet_groups, **SMALLEST)
    with pytest.warns(LatencyTableWarning, match=f"latency table {path}.*{match}.*rebuilding"):
        table = load_or_build(path, resnet, SHAPE, resnet_groups, **SMALLEST, **change)
    assert table.built_now
    key, value = next(iter(change.items()))
    assert table.meta[key] == value
    assert LatencyTable.load(path).meta[key] == value  # the rebuilt table replaced the file


def test_stale_backend_or_version_rebuilds(resnet, resnet_groups, tmp_path: Path) -> None:
    """A table measured with another backend (here: its file edited) is never used."""
    path = tmp_path / "t.json"
    load_or_build(path, resnet, SHAPE, resnet_groups, **SMALLEST)
    for key, value in [("backend", "onnxruntime"), ("backend_version", "0.0.1")]:
        data = json.loads(path.read_text())
        data["meta"][key] = value
        path.write_text(json.dumps(data))
        with pytest.warns(LatencyTableWarning, match=f"{key}='{value}'.*rebuilding"):
            table = load_or_build(path, resnet, SHAPE, resnet_groups, **SMALLEST)
        assert table.built_now and table.meta[key] != value


def test_other_architecture_or_shape_rebuilds(resnet, resnet_groups, tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    load_or_build(path, resnet, SHAPE, resnet_groups, **SMALLEST)
    wider = create_model("test_resnet", num_classes=5, width_mult=0.5).eval()
    assert architecture_fingerprint(wider) != architecture_fingerprint(resnet)
    groups = find_groups(wider, torch.zeros((1, *SHAPE)))
    with pytest.warns(LatencyTableWarning, match="fingerprint"):
        load_or_build(path, wider, SHAPE, groups, **SMALLEST)
    with pytest.warns(LatencyTableWarning, match="input_shape"):
        load_or_build(path, wider, (3, 8, 8), groups, **SMALLEST)


def test_unreadable_table_is_not_overwritten(resnet, resnet_groups, tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text("garbage")
    with pytest.raises(IAPruneError, match="not overwriting"):
        load_or_build(path, resnet, SHAPE, resnet_groups, **FAST)
    assert path.read_text() == "garbage"


def test_default_path_uses_env(resnet, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IAPRUNE_LUT_DIR", str(tmp_path))
    path = default_table_path(resnet, SHAPE, batch_size=4, threads=2)
    assert path.parent == tmp_path
    assert architecture_fingerprint(resnet) in path.name and "b4-t2" in path.name
    assert path != default_table_path(resnet, SHAPE, batch_size=1, threads=2)


# -- build options -------------------------------------------------------------------


def test_calibration_keeps_identity(resnet, resnet_groups) -> None:
    table = LatencyTable.build(
        resnet, SHAPE, resnet_groups, grid=2, warmup=0, repeats=1, calibrate=2, statistic="min"
    )
    assert len(table.calibration) == 2 and table.scale > 0
    keep = _random_keep(resnet_groups, 3)
    total = sum(table.entries_for(keep).values()) + table.offset_ms
    assert table.predict(keep) == pytest.approx(max(total, MIN_PREDICTION * table.full_ms))
    assert table.predict({}) == pytest.approx(table.full_ms)


def test_build_does_not_touch_rng_or_model(resnet, resnet_groups) -> None:
    before = {k: v.clone() for k, v in resnet.state_dict().items()}
    resnet.train()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    LatencyTable.build(resnet, SHAPE, resnet_groups, grid=2, warmup=0, repeats=1)
    assert torch.equal(torch.rand(3), expected)
    assert resnet.training and all(m.training for m in resnet.modules())
    assert all(torch.equal(v, before[k]) for k, v in resnet.state_dict().items())
    resnet.eval()


@pytest.mark.parametrize(
    "kwargs", [{"repeats": 0}, {"grid": 0}, {"grid": [0.0, 1.0]}, {"statistic": "mean"}]
)
def test_bad_settings(resnet, resnet_groups, kwargs: dict[str, Any]) -> None:
    with pytest.raises(IAPruneError):
        LatencyTable.build(resnet, SHAPE, resnet_groups, **{**FAST, **kwargs})


# -- cost function and CLI ------------------------------------------------------------


def test_predicted_cost(table: LatencyTable, resnet, resnet_groups) -> None:
    cost = predicted_cost(table, SHAPE)
    assert isinstance(cost, CostModel) and cost.uses_keep
    base = cost.measure(resnet, SHAPE)
    static = measure_cost(resnet, SHAPE)
    assert (base.macs, base.params, base.activation_bytes) == (
        static.macs,
        static.params,
        static.activation_bytes,
    )
    assert base.latency_ms == pytest.approx(table.full_ms)
    assert base.latency_env is not None and base.latency_env["predicted"] is True
    assert base.latency_env["backend"] == "torch" and base.latency_env["batch_size"] == 1
    pruner = Pruner(resnet, torch.zeros((1, *SHAPE)))
    keep = _random_keep(resnet_groups, 2)
    pruned = pruner.prune(keep)
    report = cost.measure(pruned, SHAPE, keep)
    assert report.latency_ms == pytest.approx(table.predict(keep))
    assert report.macs == measure_cost(pruned, SHAPE).macs
    assert "latency" in report.ratio_to(base)
    with pytest.raises(IAPruneError, match="input shape"):
        predicted_cost(table, (3, 8, 8))


def test_cli_builds_then_reuses(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli" / "t.json"
    args = [
        "latency-table",
        "--model",
        "test_resnet",
        "--num-classes",
        "5",
        "--width-mult",
        "1",
        "--input-size",
        "16",
        "--grid",
        "2",
        "--warmup",
        "0",
        "--repeats",
        "1",
        "--output",
        str(out),
    ]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert out.is_file() and "entries: 11 layers" in first and "offset:" in first
    assert "build time:" in first and "reused" not in first
    assert main(args) == 0
    assert "reused" in capsys.readouterr().out
    assert main([*args, "--batch-size", "2"]) == 0
    captured = capsys.readouterr()
    assert "rebuilding" in captured.err and "reused" not in captured.out
    assert LatencyTable.load(out).meta["batch_size"] == 2


def test_calibration_scale_outside_bounds_falls_back_to_one(
    table: LatencyTable, resnet: nn.Module, resnet_groups: list
) -> None:
    """Noise-dominated calibration (smaller models timed slower) must not be trusted."""
    import copy

    from iaprune.cost.latency import LatencyResult

    class Inverted:
        """Times every pruned model 50x slower than the unpruned one."""

        def measure(self, model: nn.Module, shape: Any, *_: Any, **__: Any) -> LatencyResult:
            return LatencyResult.from_runs([table.full_ms * 50], {})

    fresh = copy.deepcopy(table)
    fresh.calibration = []
    fresh.fit(resnet, SHAPE, resnet_groups, Inverted(), TimingSettings(), 3, 0.3, 0, "median")
    assert len(fresh.calibration) == 3
    assert fresh.scale == 1.0
    assert fresh.predict({}) == pytest.approx(fresh.full_ms)


def test_fit_correction_recovers_known_coefficients() -> None:
    from iaprune.cost.lut.fit import fit_correction, loo_errors

    sums = [(10.0, 0.10), (5.0, 0.02), (7.0, 0.08), (3.0, 0.01), (8.0, 0.05)]
    points = [(s, g, 0.8 * s + 50.0 * g - 1.5) for s, g in sums]
    fit = fit_correction(points)
    assert (fit.scale, fit.ms_per_gmac, fit.offset_ms) == pytest.approx((0.8, 50.0, -1.5))
    assert max(loo_errors(points)) < 1e-6
    assert loo_errors(points[:3]) == []
    with pytest.raises(ValueError):
        fit_correction(points[:2])


def test_table_correction_fits_whole_models_and_reports_its_error(
    table: LatencyTable, resnet: nn.Module, resnet_groups: list
) -> None:
    """Whole models that take 0.3 ms + 40 ms per GMAC: the fit finds it from the table's
    per-layer MACs, predicts unseen models exactly and calls itself reliable."""
    import copy

    from iaprune.cost import count_macs
    from iaprune.cost.latency import LatencyResult
    from iaprune.cost.lut.fit import calibration_keeps

    def truth(model: nn.Module) -> float:
        return 0.3 + 40.0 * count_macs(model, SHAPE) / 1e9

    class Synthetic:
        def measure(self, model: nn.Module, shape: Any, *_: Any, **__: Any) -> LatencyResult:
            return LatencyResult.from_runs([truth(model)], {})

    fresh = copy.deepcopy(table)
    fresh.calibration = []
    fresh.full_ms = truth(resnet)
    assert fresh.gmacs({}) * 1e9 == pytest.approx(count_macs(resnet, SHAPE))
    assert not fresh.reliable()  # uncalibrated: its error is unknown
    fresh.fit(resnet, SHAPE, resnet_groups, Synthetic(), TimingSettings(), 6, 0.2, 0, "median")
    assert fresh.ms_per_gmac == pytest.approx(40.0, rel=1e-3)
    assert fresh.fit_error()["n"] == 7 and fresh.fit_error()["max_pct"] < 0.1
    assert fresh.reliable()
    for keep in calibration_keeps(resnet_groups, 3, 0.2, seed=99):
        pruned = Pruner(resnet, torch.zeros((1, *SHAPE))).prune(keep)
        assert fresh.predict(keep) == pytest.approx(truth(pruned), rel=1e-3)
    again = LatencyTable.from_dict(json.loads(json.dumps(fresh.to_dict())))
    assert again.ms_per_gmac == fresh.ms_per_gmac and again.reliable()


def test_table_without_layer_macs_keeps_the_plain_line(table: LatencyTable) -> None:
    """A table written before per-layer MACs were recorded is not refitted with them."""
    data = table.to_dict()
    for layer in data["layers"]:
        layer.pop("macs_full")
    data["calibration"] = [
        {"keep": {}, "layer_sum_ms": table.layer_sum({}), "measured_ms": table.full_ms}
    ] * 5
    old = LatencyTable.from_dict(data)
    old.refit()
    assert old.scale == 1.0 and old.ms_per_gmac == 0.0 and old.fit_error() == {}
    assert old.predict({}) == pytest.approx(old.full_ms)
