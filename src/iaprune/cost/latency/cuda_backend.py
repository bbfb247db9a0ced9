"""CUDA latency backend (``"cuda"``): eager PyTorch on the GPU, timed with CUDA events."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from iaprune.cost._util import check_input_shape, eval_mode, model_dtype
from iaprune.cost.latency._base import (
    BACKENDS,
    LatencyBackend,
    LatencyResult,
    check_timing_args,
)
from iaprune.cost.latency._torch_util import random_input, resolve_device
from iaprune.errors import IAPruneError


@BACKENDS.register("cuda")
class CudaBackend(LatencyBackend):
    """Times each forward pass between two CUDA events after ``torch.cuda.synchronize``.

    Channel counts that are multiples of 32 fill tensor-core tiles, hence the preferred
    multiple. ``threads`` is ignored (GPU kernels); ``device`` defaults to the current GPU.
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

    def measure(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        *,
        batch_size: int = 1,
        threads: int | None = 1,
        warmup: int = 5,
        repeats: int = 30,
        device: str = "cuda",
    ) -> LatencyResult:
        """Time forward passes with CUDA events; see :meth:`LatencyBackend.measure`."""
        check_timing_args(batch_size=batch_size, threads=threads, warmup=warmup, repeats=repeats)
        shape = check_input_shape(input_shape)
        dev = resolve_device("cuda" if device == "cpu" else device)
        if dev.type != "cuda":
            raise IAPruneError(f"latency backend 'cuda' needs a cuda device, got {device!r}")
        target = copy.deepcopy(model).to(dev)
        x = random_input(batch_size, shape, dtype=model_dtype(model), device=dev)
        runs: list[float] = []
        with eval_mode(target), torch.inference_mode():
            for _ in range(warmup):
                target(x)
            torch.cuda.synchronize(dev)
            for _ in range(repeats):
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                target(x)
                end.record()
                end.synchronize()
                runs.append(float(start.elapsed_time(end)))
        env = self.base_env(
            version=f"torch {torch.__version__}, cuda {torch.version.cuda}",
            threads=None,
            device=f"{dev} ({torch.cuda.get_device_name(dev)})",
            batch_size=batch_size,
            input_shape=shape,
            warmup=warmup,
            repeats=repeats,
        )
        env.update(mode="eager", timer="cuda-events")
        return LatencyResult.from_runs(runs, env)
