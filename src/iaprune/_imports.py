"""Lazy imports of optional dependencies with a clear message when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from iaprune.errors import MissingDependencyError

_EXTRAS = {
    "onnx": "deploy",
    "onnxruntime": "deploy",
    "onnxscript": "deploy",
    "matplotlib": "plots",
}


def optional_import(module: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = _EXTRAS.get(top)
        hint = f"pip install 'iaprune[{extra}]'" if extra else f"pip install {top}"
        raise MissingDependencyError(f"{top} is required for this feature: {hint}") from exc
