"""Where a model comes from: the zoo, a user factory ``module.path:fn``, or a saved module.

A :class:`ModelRecipe` is stored in every run directory (``model.json``) so the unpruned
architecture can be rebuilt, the pruning spec applied, and the pruned weights loaded
without the search.

Trust: a zoo recipe is data only. A ``factory`` recipe imports and calls user code and a
``file`` recipe unpickles a whole module (which can run any code), so both build only
when trusted: a factory the caller names itself is its own code, anything named by a run
directory (its model.json, or its config.json when model.json is missing) or a pickled
module file needs the explicit opt-in ``trust_code=True`` (CLI ``--trust-code``).
Untrusted, they fail with a one-line :class:`IAPruneError` before importing or
unpickling anything. The current directory is never put on the import path: a factory
module is found on ``sys.path`` (``PYTHONPATH``), or named by its file (``net.py:make``).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from iaprune.errors import IAPruneError, one_line
from iaprune.models import create_model, list_models
from iaprune.rundir import RunDir
from iaprune.train.checkpoint import load_failure, refused_global

TRUST_FLAG = "--trust-code"
"""The CLI opt-in that lets stored factories and pickled module files run."""
KINDS = ("zoo", "factory", "file")
"""Valid :attr:`ModelRecipe.kind` values."""


def untrusted_error(what: str) -> IAPruneError:
    """The one-line refusal to run code from ``what`` without the opt-in flag."""
    return IAPruneError(
        f"{what} would run code on loading; pass {TRUST_FLAG} (Python: trust_code=True) "
        "only if you trust its origin"
    )


@dataclass(frozen=True)
class ModelRecipe:
    """How to build the unpruned model.

    ``kind`` is ``zoo`` (``target`` is a registered name), ``factory``
    (``target`` is ``module.path:callable``) or ``file`` (``target`` is a file written by
    ``torch.save(model)``, absolute or relative to ``base``). ``trusted`` is never
    stored: a factory or file recipe builds only when it is ``True``.
    """

    kind: str
    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    trusted: bool = field(default=False, compare=False)
    base: Path | None = field(default=None, compare=False)

    def build(self) -> nn.Module:
        """Instantiate the unpruned model (factory and file recipes only when trusted)."""
        if self.kind == "zoo":
            try:
                return create_model(self.target, **self.kwargs)
            except TypeError as exc:  # a model.json with arguments the model does not take
                raise IAPruneError(f"model {self.target!r}: {one_line(exc)}") from exc
        if self.kind not in KINDS:
            valid = ", ".join(KINDS)
            raise IAPruneError(f"unknown model source kind {self.kind!r}; valid: {valid}")
        if not self.trusted:
            raise untrusted_error(f"model {self.kind} {self.target!r}")
        if self.kind == "factory":
            return _call_factory(self.target, self.kwargs)
        return _load_module_file(self.path, trusted=True)

    @property
    def path(self) -> Path:
        """A file recipe's file (relative targets resolve against ``base``)."""
        target = Path(self.target)
        return target if target.is_absolute() or self.base is None else self.base / target

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (without ``trusted`` and ``base``)."""
        return {"kind": self.kind, "target": self.target, "kwargs": dict(self.kwargs)}

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, trust_code: bool = False, base: Path | None = None
    ) -> ModelRecipe:
        """Inverse of :meth:`to_dict`; ``trust_code`` lets factory/file recipes build."""
        if not isinstance(data, Mapping) or not isinstance(data.get("kwargs") or {}, Mapping):
            raise IAPruneError("model recipe must be a JSON object with kind, target and kwargs")
        try:
            kind, target = str(data["kind"]), str(data["target"])
        except KeyError as exc:
            raise IAPruneError(f"model recipe lacks {exc}") from None
        return cls(kind, target, dict(data.get("kwargs") or {}), trusted=trust_code, base=base)


def resolve_model(
    spec: str,
    *,
    num_classes: int,
    in_channels: int,
    width_mult: float = 1.0,
    trust_code: bool = False,
    own: bool = True,
) -> ModelRecipe:
    """Turn a CLI ``--model`` value into a recipe (checked by building it once).

    With ``own`` ``spec`` is the caller's own choice, so a factory it names runs; one read
    from a run directory (``own=False``) runs only with ``trust_code``. A module file is
    unpickled only with ``trust_code`` (a state-dict file gets a pointer to --checkpoint).
    """
    if ":" in spec and not Path(spec).exists():
        recipe = ModelRecipe(
            "factory",
            _absolute_file(spec),
            {"num_classes": num_classes, "in_channels": in_channels},
            trusted=own or trust_code,
        )
    elif Path(spec).suffix in {".pt", ".pth"} or Path(spec).is_file():
        path = Path(spec).resolve()
        if not trust_code:
            _load_module_file(path, trusted=False)  # raises: names the flag or --checkpoint
        recipe = ModelRecipe("file", str(path), trusted=True)
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
def stored_recipe(run: RunDir, trust_code: bool) -> ModelRecipe:
    """A run's model.json (file targets relative to the run directory); one-line errors."""
    data = run.read_json("model.json")
    try:
        return ModelRecipe.from_dict(data, trust_code=trust_code, base=run.root)
    except (IAPruneError, TypeError, KeyError, ValueError, AttributeError) as exc:
        raise IAPruneError(f"{run / 'model.json'} is invalid: {one_line(exc)}") from exc


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
    try:
        fn = getattr(_import_source(module_name), attr)
    except (ImportError, AttributeError) as exc:
        local = Path(*module_name.split(".")).with_suffix(".py")
        hint = (
            f" (the current directory is not on the import path: name the file, "
            f"'{local}:{attr}', or set PYTHONPATH)"
            if isinstance(exc, ImportError) and local.is_file()
            else ""
        )
        raise IAPruneError(f"cannot import model factory {target!r}: {exc}{hint}") from exc
    accepted = inspect.signature(fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    model = fn(**{k: v for k, v in kwargs.items() if takes_any or k in accepted})
    if not isinstance(model, nn.Module):
        raise IAPruneError(
            f"model factory {target!r} returned {type(model).__name__}, not a Module"
        )
    return model


def _load_module_file(path: Path, *, trusted: bool) -> nn.Module:
    """Unpickle a ``torch.save(model)`` file; untrusted, only probe it as plain data."""
    if not path.is_file():
        raise IAPruneError(f"model file not found: {path}")
    try:
        model = torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as exc:
        if not refused_global(exc):
            raise IAPruneError(f"cannot load model file {path}: {load_failure(exc)}") from exc
        raise untrusted_error(f"model file {path} (a pickled module)") from exc
    except Exception as exc:  # corrupt or foreign file
        raise IAPruneError(f"cannot load model file {path}: {load_failure(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise IAPruneError(
            f"{path} holds a {type(model).__name__}, not a model; pass a state dict with "
            "--checkpoint and the architecture with --model"
        )
    return model
