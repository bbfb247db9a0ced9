"""Where a model lives: its device, and a readable name of a device for result records."""

from __future__ import annotations

import contextlib
import platform

import torch
from torch import nn

from iaprune.errors import IAPruneError

__all__ = ["device_name", "model_device", "resolve_device"]


def model_device(model: nn.Module) -> torch.device:
    """Device of the first parameter (or buffer) of ``model``; CPU for stateless models."""
    for param in model.parameters():
        return param.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def device_name(device: str | torch.device = "cpu") -> str:
    """The hardware behind ``device``: the CUDA device name, else the CPU model.

    The CPU model comes from ``/proc/cpuinfo`` (``model name``), falling back to
    :func:`platform.processor` or :func:`platform.machine` elsewhere. Latency tables record
    it in their meta and benchmarks in their results headers and file names.
    """
    dev = str(device)
    if dev.startswith("cuda") and torch.cuda.is_available():
        with contextlib.suppress(Exception):
            return torch.cuda.get_device_name(torch.device(dev))
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (a GPU when one is visible) as a device.

    ``cuda`` becomes ``cuda:<current>``. Raises :class:`IAPruneError` (one line) for a
    string that is not a device and for CUDA when no GPU is visible.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise IAPruneError(f"unknown device {name!r}; valid: cpu, cuda, cuda:N, auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise IAPruneError(f"device {name!r} requested but no CUDA GPU is visible")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    return device
