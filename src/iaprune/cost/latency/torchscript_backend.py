"""TorchScript latency backend (``"torchscript"``): traced, frozen, optimised for inference."""

from __future__ import annotations

import copy

import torch
from torch import nn

from iaprune.convert import optimize_scripted, trace_frozen
from iaprune.cost.latency._base import (
    BACKENDS,
    LatencyBackend,
    Timing,
    TimingSettings,
    time_callable,
)
from iaprune.cost.latency._torch_util import random_input, resolve_device, torch_threads
from iaprune.inference import model_dtype


@BACKENDS.register("torchscript")
class TorchScriptBackend(LatencyBackend):
    """Times a ``torch.jit.trace`` + ``torch.jit.freeze`` copy of the model.

    Freezing folds BatchNorm into the convolutions; ``optimize_for_inference`` is
    applied where it works (the env records whether it was). The copy is made on the
    requested device, so the caller's model is untouched.
    """

    name = "torchscript"
    preferred_multiple = 8

    def time_runs(
        self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings
    ) -> Timing:
        """Trace, freeze and time; see :meth:`LatencyBackend.measure`."""
        dev = resolve_device(settings.device)
        x = random_input(settings.batch_size, shape, dtype=model_dtype(model), device=dev)
        sync = dev.type == "cuda"
        with torch_threads(settings.threads) as used_threads:
            scripted, optimized = optimize_scripted(trace_frozen(copy.deepcopy(model).to(dev), x))

            def run_once() -> None:
                scripted(x)
                if sync:
                    torch.cuda.synchronize(dev)

            with torch.inference_mode():
                runs = time_callable(run_once, warmup=settings.warmup, repeats=settings.repeats)
        extra = {"mode": "torchscript-frozen", "optimize_for_inference": optimized}
        return Timing(runs, torch.__version__, used_threads, str(dev), extra)
