"""Where a model lives: its device, and a readable name of a device for result records."""

from __future__ import annotations

import contextlib
import platform

import torch
from torch import nn

__all__ = ["device_name", "model_device"]


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
