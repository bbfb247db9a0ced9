"""Checks made before any work: a bad input fails in seconds and is never saved."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from iaprune.artefacts import finished_baseline
from iaprune.config import RunConfig
from iaprune.devices import model_device
from iaprune.errors import IAPruneError, one_line
from iaprune.inference import eval_mode
from iaprune.resume import confirm_outputs, resume_config, with_study_name
from iaprune.rundir import RUN_MARKER, RunDir, lock_run_dir, recover
from iaprune.train.checkpoint import load_weights

log = logging.getLogger(__name__)


def saved_config(root: Path) -> RunConfig | None:
    """The config.json of an existing run directory, if any."""
    if not (root / "config.json").is_file():
        return None
    return RunConfig.from_dict(RunDir(root).read_json("config.json"))


def start_config(
    root: Path, config: RunConfig, *, resume: bool, explicit: Collection[str] | None
) -> tuple[RunConfig, RunConfig | None, frozenset[str]]:
    """The config a run at ``root`` starts with, the one it saved, the outputs not confirmed.

    An existing run is recovered and locked before it is read. On ``resume`` the saved
    config wins except for the safe changes ``explicit`` names (see
    :func:`iaprune.resume.resume_config`, :func:`iaprune.resume.confirm_outputs`); the
    third value names the stored outputs to use read-only.
    """
    recover(root)
    if (root / RUN_MARKER).is_file():
        lock_run_dir(root)  # before reading it: one writer at a time
    saved = saved_config(root) if resume else None
    if saved is not None:
        RunDir(root).check_files()
    config = with_study_name(config, saved, root.name)  # one study name per run
    unconfirmed: frozenset[str] = frozenset()
    if saved is not None:
        config = resume_config(saved, config, explicit)
        check_baseline_change(root, saved, config)
        config, unconfirmed = confirm_outputs(config, explicit)
    check_writable(root)
    return config, saved, unconfirmed


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


def check_forward(
    model: nn.Module,
    example: torch.Tensor,
    num_classes: int,
    spec: str,
    dataset: str,
    *,
    weights: str = "",
) -> None:
    """One forward pass on a data-shaped ``example``: finite ``(1, classes)`` float logits.

    ``weights`` names where trained weights came from (a checkpoint, the baseline), so
    a NaN output is found before any training or search.
    """
    try:
        with torch.no_grad(), eval_mode(model):
            out = model(example.to(model_device(model)))
    except Exception as exc:  # user models fail in any way
        raise IAPruneError(
            f"model {spec!r} fails on input shape "
            f"{tuple(example.shape)} of {dataset}: {one_line(exc, 200)}"
        ) from exc
    check_output(out, num_classes, spec, weights=weights, model=model)


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights with a one-line, bounded error for anything unexpected."""
    try:
        return load_weights(model, path)
    except IAPruneError as exc:
        raise IAPruneError(one_line(exc, 400)) from exc
    except Exception as exc:  # a dict of the wrong shape, e.g. state_dict is a string
        raise IAPruneError(f"cannot load checkpoint {path}: {one_line(exc, 200)}") from exc
