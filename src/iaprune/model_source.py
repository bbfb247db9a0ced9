"""Where a model comes from: the zoo, a user factory ``module.path:fn``, or a saved module.

A :class:`ModelRecipe` is stored in every run directory so the unpruned architecture can
be rebuilt, the pruning spec applied, and the pruned weights loaded without the search.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from iaprune.errors import IAPruneError
from iaprune.models import create_model, list_models


@dataclass(frozen=True)
class ModelRecipe:
    """How to build the unpruned model.

    ``kind`` is ``zoo`` (``target`` is a registered name), ``factory``
    (``target`` is ``module.path:callable``) or ``file`` (``target`` is a file written by
    ``torch.save(model)``; it is unpickled, so only load files you trust).
    """

    kind: str
    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        """Instantiate the unpruned model."""
        if self.kind == "zoo":
            return create_model(self.target, **self.kwargs)
        if self.kind == "factory":
            return _call_factory(self.target, self.kwargs)
        if self.kind == "file":
            return _load_module_file(Path(self.target))
        raise IAPruneError(f"unknown model source kind {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelRecipe:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["kind"]), str(data["target"]), dict(data.get("kwargs") or {}))


def resolve_model(
    spec: str, *, num_classes: int, in_channels: int, width_mult: float = 1.0
) -> ModelRecipe:
    """Turn a CLI ``--model`` value into a recipe (checked by building it once)."""
    if ":" in spec and not Path(spec).exists():
        recipe = ModelRecipe(
            "factory",
            _absolute_file(spec),
            {"num_classes": num_classes, "in_channels": in_channels},
        )
    elif Path(spec).suffix in {".pt", ".pth"} or Path(spec).is_file():
        recipe = ModelRecipe("file", str(Path(spec).resolve()))
    elif spec in list_models():
        recipe = ModelRecipe(
            "zoo",
            spec,
            {"num_classes": num_classes, "in_channels": in_channels, "width_mult": width_mult},
        )
    else:
        raise IAPruneError(
            f"unknown model {spec!r}; valid: {', '.join(list_models())}, "
            "a factory 'module.path:function' or a file saved with torch.save(model)"
        )
    recipe.build()
    return recipe


# -- factories in a .py file: ``path/to/file.py:factory`` ---------------------------------
def _absolute_file(target: str) -> str:
    """``file.py:fn`` with the file made absolute (a run directory outlives the cwd)."""
    source, _, attr = target.rpartition(":")
    if source.endswith(".py"):
        return f"{Path(source).resolve()}:{attr}"
    return target


def _import_source(source: str) -> Any:
    """Import ``source``: a dotted module name, or a ``.py`` file loaded by path."""
    if not source.endswith(".py"):
        return importlib.import_module(source)
    path = Path(source)
    if not path.is_file():
        raise ImportError(f"no such file {path}")
    spec = importlib.util.spec_from_file_location(f"iaprune_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _call_factory(target: str, kwargs: dict[str, Any]) -> nn.Module:
    module_name, _, attr = target.rpartition(":")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        fn = getattr(_import_source(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise IAPruneError(f"cannot import model factory {target!r}: {exc}") from exc
    accepted = inspect.signature(fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    model = fn(**{k: v for k, v in kwargs.items() if takes_any or k in accepted})
    if not isinstance(model, nn.Module):
        raise IAPruneError(
            f"model factory {target!r} returned {type(model).__name__}, not a Module"
        )
    return model


def _load_module_file(path: Path) -> nn.Module:
    if not path.is_file():
        raise IAPruneError(f"model file not found: {path}")
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # corrupt or foreign file
        raise IAPruneError(f"cannot load model file {path}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise IAPruneError(
            f"{path} holds a {type(model).__name__}, not a model; pass a state dict with "
            "--checkpoint and the architecture with --model"
        )
    return model
