"""Layers only point down: model conversion < latency backends / cost < export.

Checked on the source (every ``import`` of every module, lazy ones included), so an
import added inside a function cannot bring back the cycle that ``iaprune.convert``
removed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "iaprune"


def _imports(package: str) -> set[str]:
    """Every ``iaprune.*`` module imported anywhere in ``package`` (a path under src/iaprune)."""
    found: set[str] = set()
    root = SRC / package
    files = [root.with_suffix(".py")] if root.with_suffix(".py").is_file() else root.rglob("*.py")
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("iaprune")}


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("convert", ("iaprune.cost", "iaprune.export", "iaprune.search", "iaprune.pipeline")),
        ("cost", ("iaprune.export", "iaprune.search", "iaprune.pipeline", "iaprune.config")),
        ("timing", ("iaprune.cost", "iaprune.config", "torch")),
        ("inference", ("iaprune.cost", "iaprune.export")),
        ("devices", ("iaprune.cost", "iaprune.export")),
    ],
)
def test_package_does_not_import_upwards(package: str, forbidden: tuple[str, ...]) -> None:
    imported = _imports(package)
    bad = sorted(m for m in imported if any(m == f or m.startswith(f + ".") for f in forbidden))
    assert not bad, f"iaprune.{package} imports {bad}"


def test_timing_settings_import_without_torch() -> None:
    """``iaprune.timing`` (used by the configuration) imports neither torch nor the cost package."""
    source = (SRC / "timing.py").read_text(encoding="utf-8")
    assert "import torch" not in source
