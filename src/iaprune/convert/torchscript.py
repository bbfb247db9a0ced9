"""TorchScript export: trace, freeze, optionally ``optimize_for_inference``, save and load."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from iaprune.devices import model_device
from iaprune.errors import IAPruneError, one_line
from iaprune.inference import eval_mode


def trace_frozen(model: nn.Module, example_input: torch.Tensor) -> torch.jit.ScriptModule:
    """``torch.jit.trace`` the model in eval mode, then ``torch.jit.freeze`` it.

    Freezing inlines parameters and buffers as constants and folds BatchNorm into the
    preceding convolutions. The result is portable (it can be saved and loaded). The
    model's ``training`` flags are restored.

    Raises:
        IAPruneError: the model cannot be traced.
    """
    x = example_input.to(model_device(model))
    with eval_mode(model), torch.no_grad():
        try:
            traced = torch.jit.trace(model, (x,), check_trace=False)
        except Exception as exc:
            raise IAPruneError(f"torch.jit.trace failed: {one_line(exc)}") from exc
    traced.eval()
    try:
        return torch.jit.freeze(traced)
    except Exception as exc:
        raise IAPruneError(f"torch.jit.freeze failed: {one_line(exc)}") from exc


def optimize_scripted(module: torch.jit.ScriptModule) -> tuple[torch.jit.ScriptModule, bool]:
    """``torch.jit.optimize_for_inference`` when it works (it may change ``module`` in place).

    Returns:
        The module to run and whether the optimisation was applied.
    """
    try:
        return torch.jit.optimize_for_inference(module), True
    except Exception:  # unsupported graph or build without the passes: run it as it is
        return module, False


def save_torchscript(module: torch.jit.ScriptModule, path: str | Path) -> None:
    """``torch.jit.save`` the module to ``path``."""
    torch.jit.save(module, str(path))


def load_torchscript(
    path: str | Path, device: str | torch.device = "cpu"
) -> torch.jit.ScriptModule:
    """``torch.jit.load`` a saved module onto ``device``.

    Raises:
        IAPruneError: the file is missing or is not a TorchScript archive.
    """
    if not Path(path).is_file():
        raise IAPruneError(f"no TorchScript file at {path}")
    try:
        return torch.jit.load(str(path), map_location=device)
    except Exception as exc:
        raise IAPruneError(f"cannot load TorchScript file {path}: {one_line(exc)}") from exc
