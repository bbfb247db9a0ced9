"""The default install has what the default command needs."""

from __future__ import annotations

import tomllib
from pathlib import Path


def test_plots_are_in_the_default_install() -> None:
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    assert any(d.startswith("matplotlib") for d in deps)


def test_every_module_imports_on_its_own() -> None:
    """Each module imports in a fresh interpreter, first of all (no hidden import order)."""
    import subprocess
    import sys

    import iaprune

    root = Path(iaprune.__file__).resolve().parent
    names = sorted(
        "iaprune." + ".".join(p.relative_to(root).with_suffix("").parts).replace(".__init__", "")
        for p in root.rglob("*.py")
    )
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    for m in [k for k in sys.modules if k == 'iaprune' or k.startswith('iaprune.')]:\n"
        "        del sys.modules[m]\n"
        "    importlib.import_module(name)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *names], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(names) > 80


def test_the_package_is_typed() -> None:
    import iaprune

    assert (Path(iaprune.__file__).resolve().parent / "py.typed").is_file()
