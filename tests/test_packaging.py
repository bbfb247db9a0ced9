"""The default install has what the default command needs."""

from __future__ import annotations

import tomllib
from pathlib import Path


def test_plots_are_in_the_default_install() -> None:
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    assert any(d.startswith("matplotlib") for d in deps)
