"""Checkpoints: atomic writes (a crash never leaves a half-written file) and data-only reads.

Every read uses ``torch.load(weights_only=True)``: a checkpoint is tensors and plain
containers, never code, so a run directory received from someone else is safe to load.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from iaprune.errors import IAPruneError, one_line
from iaprune.fileio import atomic_path


def _writer(fd: int) -> IO[bytes]:
    """The binary file ``torch.save`` writes to (tests replace it to fill the disk)."""
    return os.fdopen(fd, "wb")


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` via :func:`iaprune.fileio.atomic_path` (a link at ``path`` is replaced).

    Raises:
        IAPruneError: the write failed; a full disk says so with ``path`` (torch's own
            error would be ``RuntimeError: unexpected pos``).
    """
    with atomic_path(path, what="checkpoint") as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
        try:
            with _writer(fd) as fh:
                torch.save(obj, fh)
        except RuntimeError as exc:  # torch wraps the OSError of a failed write
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, OSError):
                raise OSError(cause.errno, cause.strerror, str(path)) from exc
            raise


def refused_global(exc: BaseException) -> bool:
    """Whether ``torch.load(weights_only=True)`` failed on a pickled object (not corruption)."""
    return "GLOBAL " in str(exc)


def check_checkpoint_file(path: Path) -> None:
    """A one-line error unless ``path`` is an existing regular file (not a folder, fifo, device)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise IAPruneError(f"checkpoint not found: {path}") from None
    except OSError as exc:
        raise IAPruneError(f"cannot read checkpoint {path}: {exc.strerror}") from exc
    if stat.S_ISDIR(mode):
        raise IAPruneError(f"checkpoint {path} is a directory; name a file saved with torch.save")
    if not stat.S_ISREG(mode):
        raise IAPruneError(
            f"checkpoint {path} is not a regular file (a fifo or a device); name a file "
            "saved with torch.save"
        )


def load_failure(exc: BaseException) -> str:
    """Why ``torch.load`` failed, without torch's advice to load with ``weights_only=False``."""
    text = str(exc)
    if "weights_only" not in text:
        return one_line(exc)
    found = re.search(r"WeightsUnpickler error:\s*(.*?)\s*(?:\n\n|Check the doc|$)", text, re.S)
    detail = " ".join(found.group(1).split()) if found else ""
    return "not a file saved with torch.save" + (f" ({detail})" if detail else "")


def load_state(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dictionary, or a bare state_dict, with a one-line error."""
    path = Path(path)
    check_checkpoint_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt pickle, zip or tensor data, or a pickled object
        if refused_global(exc):
            raise IAPruneError(
                f"checkpoint {path} holds objects other than tensors and plain containers; "
                "re-save it as torch.save(model.state_dict(), path)"
            ) from exc
        raise IAPruneError(f"cannot read checkpoint {path}: {load_failure(exc)}") from exc
    if not isinstance(obj, dict):
        raise IAPruneError(f"checkpoint {path} does not hold a state dict")
    return obj


def load_into(model: nn.Module, obj: Mapping[str, Any], source: str | Path) -> nn.Module:
    """Load ``obj`` (``{"state_dict": ...}`` or a bare state_dict) into ``model``.

    The one place weights read from a file meet a model: a mapping of the wrong kind, or
    of other names or shapes (e.g. a baseline.pt of another width), is a one-line error
    naming ``source``.
    """
    state = obj.get("state_dict", obj)
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise IAPruneError(
            f"checkpoint {source}: 'state_dict' is not a mapping of names to tensors"
        )
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:  # shapes, names or value types
        raise IAPruneError(
            f"checkpoint {source} does not match the model: {_mismatch(exc)}"
        ) from exc
    return model


def _mismatch(exc: BaseException) -> str:
    """The first problem ``load_state_dict`` lists, on one line, and how many more there are."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    problems = lines[1:] or lines
    # "size mismatch for w: copying a param with shape S from checkpoint, the shape in
    # current model is M." -> "size mismatch for w: checkpoint S, model M"
    first = re.sub(
        r"copying a param with shape torch\.Size\((.*?)\) from checkpoint, the shape in "
        r"current model is torch\.Size\((.*?)\)\.?",
        r"checkpoint \1, model \2",
        problems[0] if problems else type(exc).__name__,
    )
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return one_line(RuntimeError(first), 240) + more


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights from the file ``path`` into ``model`` (see :func:`load_into`)."""
    return load_into(model, load_state(path), path)
