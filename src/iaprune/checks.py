"""Checks made before any work: a bad input fails in seconds and is never saved."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from iaprune.config import RunConfig
from iaprune.errors import IAPruneError, one_line
from iaprune.rundir import RunDir
from iaprune.train.checkpoint import load_state


def saved_config(root: Path) -> RunConfig | None:
    """The config.json of an existing run directory, if any."""
    if not (root / "config.json").is_file():
        return None
    return RunConfig.from_dict(RunDir(root).read_json("config.json"))


def finished_baseline(root: Path) -> dict[str, Any] | None:
    """``root/baseline.pt`` if it holds a finished baseline (not an interrupted one)."""
    path = root / "baseline.pt"
    if not path.is_file():
        return None
    obj = load_state(path)
    # Older runs wrote "epoch" into the file while training and dropped it when done.
    return obj if obj.get("complete") or "epoch" not in obj else None


def check_baseline_change(root: Path, saved: RunConfig, config: RunConfig) -> None:
    """Baseline epochs/lr may change on resume only while the baseline is unfinished."""
    old = (saved.baseline_epochs, saved.baseline_lr)
    if old != (config.baseline_epochs, config.baseline_lr) and finished_baseline(root):
        raise IAPruneError(
            f"the baseline is finished ({old[0]} epochs, lr {old[1]:g}); --baseline-epochs and "
            "--baseline-lr can change only an unfinished one"
        )


def check_writable(root: Path) -> None:
    """A one-line error unless ``root`` (or the folder it would be made in) is writable."""
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise IAPruneError(f"cannot create run directory {root}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise IAPruneError(f"cannot write to {probe} (read-only); choose another --run-dir")


@contextmanager
def user_model_errors(spec: str) -> Iterator[None]:
    """Any exception from user model code becomes a one-line :class:`IAPruneError`."""
    try:
        yield
    except IAPruneError:
        raise
    except Exception as exc:  # user code raises anything
        raise IAPruneError(f"cannot build model {spec!r}: {one_line(exc)}") from exc


def check_output(
    out: Any, num_classes: int, spec: str, *, weights: str = "", model: nn.Module | None = None
) -> None:
    """The model's forward must return one finite ``(batch, num_classes)`` float logits tensor.

    ``weights`` names where the model's weights came from (a checkpoint, the trained
    baseline) and ``model`` lets a NaN output say how many weights are not finite.
    """
    if not isinstance(out, torch.Tensor):
        raise IAPruneError(
            f"model {spec!r} returns a {type(out).__name__}; it must return one logits tensor"
        )
    if tuple(out.shape) != (1, num_classes):
        raise IAPruneError(
            f"model {spec!r} returns shape {tuple(out.shape)}; expected (1, {num_classes}) logits"
        )
    if not out.is_floating_point():
        raise IAPruneError(
            f"model {spec!r} returns {out.dtype} values; it must return float logits"
        )
    if not bool(torch.isfinite(out).all()):
        origin = f" with the weights of {weights}" if weights else ""
        bad = non_finite_weights(model) if model is not None else 0
        why = f" (NaN or infinite weight values: {bad})" if bad else ""
        raise IAPruneError(
            f"model {spec!r}{origin} returns NaN or infinite logits on a data-shaped input{why}"
        )


def non_finite_weights(model: nn.Module) -> int:
    """How many values of ``model``'s floating-point parameters and buffers are NaN or inf."""
    tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
    return sum(int((~torch.isfinite(t)).sum()) for t in tensors)
