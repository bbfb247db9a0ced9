"""Every benchmark model's baseline run configuration starts (before any training).

A run configuration is checked against its objective's budget when the run is created.
resnet56 at width 0.375 has 6-channel groups, which the CPU's channel multiple (8) cannot
cut to the default 50 % of the MACs: its baselines start only with the rows' multiple.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

from iaprune import Session
from iaprune.errors import IAPruneError

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture()
def scripts(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, ModuleType]:
    """``common`` and ``search_value``, imported as the scripts import them."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("common"), importlib.import_module("search_value")


@pytest.mark.parametrize("model", ["resnet56", "vgg16"])
def test_search_value_baselines_start_at_the_rows_channel_multiple(
    scripts: tuple[ModuleType, ModuleType], model: str, tmp_path: Path
) -> None:
    common, search_value = scripts
    width, round_to = search_value.MODELS[model], search_value.ROUND_TO.get(model)
    config = common.baseline_config(model, width, "synthetic", 1, "cpu", round_to)
    session = Session.create(tmp_path / "run", config)
    assert session.config.search.round_to == round_to


def test_without_the_multiple_the_resnet56_baseline_is_refused_before_training(
    scripts: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    common, _ = scripts
    config = common.baseline_config("resnet56", 0.375, "synthetic", 1, "cpu")
    with pytest.raises(IAPruneError, match="unreachable"):
        Session.create(tmp_path / "run", config)
    assert not (tmp_path / "run" / "baseline.partial.pt").exists()
