"""Eager PyTorch latency backend (``"torch"``)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from iaprune.cost.latency._base import (
    BACKENDS,
    LatencyBackend,
    Timing,
    TimingSettings,
    time_callable,
)
from iaprune.cost.latency._torch_util import (
    INPUT_SEED,
    random_input,
    resolve_device,
    torch_threads,
)
from iaprune.devices import model_device
from iaprune.inference import eval_mode, model_dtype

__all__ = ["INPUT_SEED", "TorchBackend"]


@BACKENDS.register("torch")
class TorchBackend(LatencyBackend):
    """Times eager ``model(x)`` under ``torch.inference_mode()`` in eval mode.

    The input is drawn from a private generator (the global RNG is untouched). A
    model on another device than ``device`` is timed on a copy moved there. CUDA runs
    synchronise after each pass so the wall-clock time covers the kernels.
    """

    name = "torch"
    preferred_multiple = 8

    def time_runs(
        self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings
    ) -> Timing:
        """Time eager forward passes; see :meth:`LatencyBackend.measure`."""
        dev = resolve_device(settings.device)
        target = model if model_device(model) == dev else copy.deepcopy(model).to(dev)
        x = random_input(settings.batch_size, shape, dtype=model_dtype(model), device=dev)
        sync = dev.type == "cuda"

        def run_once() -> None:
            target(x)
            if sync:
                torch.cuda.synchronize(dev)

        with (
            torch_threads(settings.threads) as used_threads,
            eval_mode(target),
            torch.inference_mode(),
        ):
            runs = time_callable(run_once, warmup=settings.warmup, repeats=settings.repeats)
        extra = {"mode": "eager", "dtype": str(x.dtype).removeprefix("torch.")}
        return Timing(runs, torch.__version__, used_threads, str(dev), extra)
