"""CUDA latency backend (``"cuda"``): eager PyTorch on the GPU, timed with CUDA events."""

from __future__ import annotations

import copy

import torch
from torch import nn

from iaprune.cost.latency._base import BACKENDS, LatencyBackend, Timing, TimingSettings
from iaprune.cost.latency._torch_util import random_input, resolve_device
from iaprune.errors import IAPruneError
from iaprune.inference import eval_mode, model_dtype


@BACKENDS.register("cuda")
class CudaBackend(LatencyBackend):
    """Times each forward pass between two CUDA events after ``torch.cuda.synchronize``.

    Channel counts that are multiples of 32 fill tensor-core tiles, hence the preferred
    multiple. ``threads`` is ignored (GPU kernels); ``device="cpu"`` (the CLI default)
    means the current GPU.
    """

    name = "cuda"
    preferred_multiple = 32

    @classmethod
    def available(cls) -> bool:
        """Whether a CUDA device is visible to torch."""
        return torch.cuda.is_available()

    @classmethod
    def unavailable_error(cls) -> IAPruneError:
        """Says that no GPU is present."""
        return IAPruneError("latency backend 'cuda' needs a CUDA GPU; none is visible to torch")

    def time_runs(
        self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings
    ) -> Timing:
        """Time forward passes with CUDA events; see :meth:`LatencyBackend.measure`."""
        dev = resolve_device("cuda" if settings.device == "cpu" else settings.device)
        if dev.type != "cuda":
            raise IAPruneError(
                f"latency backend 'cuda' needs a cuda device, got {settings.device!r}"
            )
        target = copy.deepcopy(model).to(dev)
        x = random_input(settings.batch_size, shape, dtype=model_dtype(model), device=dev)
        runs: list[float] = []
        with eval_mode(target), torch.inference_mode():
            for _ in range(settings.warmup):
                target(x)
            torch.cuda.synchronize(dev)
            for _ in range(settings.repeats):
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                target(x)
                end.record()
                end.synchronize()
                runs.append(float(start.elapsed_time(end)))
        version = f"torch {torch.__version__}, cuda {torch.version.cuda}"
        device = f"{dev} ({torch.cuda.get_device_name(dev)})"
        return Timing(runs, version, None, device, {"mode": "eager", "timer": "cuda-events"})
