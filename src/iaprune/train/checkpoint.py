"""Checkpoints: atomic writes (a crash never leaves a half-written file) and data-only reads.

Every read uses ``torch.load(weights_only=True)``: a checkpoint is tensors and plain
containers, never code, so a run directory received from someone else is safe to load.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from iaprune.errors import IAPruneError, one_line
from iaprune.fileio import atomic_path


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` via :func:`iaprune.fileio.atomic_path` (a link at ``path`` is replaced)."""
    with atomic_path(path, what="checkpoint") as tmp:
        torch.save(obj, tmp)


def refused_global(exc: BaseException) -> bool:
    """Whether ``torch.load(weights_only=True)`` failed on a pickled object (not corruption)."""
    return "GLOBAL " in str(exc)


def load_state(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dictionary, or a bare state_dict, with a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise IAPruneError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt pickle, zip or tensor data, or a pickled object
        if refused_global(exc):
            raise IAPruneError(
                f"checkpoint {path} holds objects other than tensors and plain containers; "
                "re-save it as torch.save(model.state_dict(), path)"
            ) from exc
        raise IAPruneError(f"cannot read checkpoint {path}: {one_line(exc)}") from exc
    if not isinstance(obj, dict):
        raise IAPruneError(f"checkpoint {path} does not hold a state dict")
    return obj


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights into ``model`` (``{"state_dict": ...}`` or a bare state_dict)."""
    obj = load_state(path)
    state = obj.get("state_dict", obj)
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise IAPruneError(f"checkpoint {path}: 'state_dict' is not a mapping of names to tensors")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:  # shapes, names or value types
        first = str(exc).strip().splitlines()
        detail = "; ".join(line.strip() for line in first[1:3]) or first[0]
        raise IAPruneError(f"checkpoint {path} does not match the model: {detail}") from exc
    return model
