"""Eager PyTorch latency backend (``"torch"``)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn

from iaprune.cost.latency._base import (
    BACKENDS,
    LatencyBackend,
    Runner,
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

    @contextlib.contextmanager
    def runner(
        self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings
    ) -> Iterator[Runner]:
        """Eval mode, inference mode and the thread count held while the runner is open."""
        dev = resolve_device(settings.device)
        target = model if model_device(model) == dev else copy.deepcopy(model).to(dev)
        x = random_input(settings.batch_size, shape, dtype=model_dtype(model), device=dev)
        sync = dev.type == "cuda"

        def run_once() -> None:
            target(x)
            if sync:
                torch.cuda.synchronize(dev)

        def block(warmup: int, repeats: int) -> list[float]:
            return time_callable(run_once, warmup=warmup, repeats=repeats)

        with (
            torch_threads(settings.threads) as used_threads,
            eval_mode(target),
            torch.inference_mode(),
        ):
            extra = {"mode": "eager", "dtype": str(x.dtype).removeprefix("torch.")}
            yield Runner(block, torch.__version__, used_threads, str(dev), extra)

    def time_runs(
        self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings
    ) -> Timing:
        """Time eager forward passes; see :meth:`LatencyBackend.measure`."""
        return self.time_with_runner(model, shape, settings)
