"""Eager PyTorch latency backend (``"torch"``)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from iaprune.cost._util import check_input_shape, eval_mode, model_device, model_dtype
from iaprune.cost.latency._base import (
    BACKENDS,
    LatencyBackend,
    LatencyResult,
    check_timing_args,
    time_callable,
)
from iaprune.cost.latency._torch_util import (
    INPUT_SEED,
    random_input,
    resolve_device,
    torch_threads,
)

__all__ = ["INPUT_SEED", "TorchBackend"]

_resolve_device = resolve_device  # kept for code importing the old private name


@BACKENDS.register("torch")
class TorchBackend(LatencyBackend):
    """Eager-mode PyTorch: ``model.eval()`` under ``torch.inference_mode()``.

    The input is ``torch.randn`` from a generator seeded with :data:`INPUT_SEED`
    (the global RNG is untouched). The intra-op thread count is fixed with
    ``torch.set_num_threads(threads)`` while timing and restored afterwards. If the
    model lives on another device than ``device`` a deep copy is moved there, so the
    caller's model is never moved. On CUDA each run synchronises before the clock stops.
    """

    name = "torch"
    preferred_multiple = 8

    def measure(
        self,
        model: nn.Module,
        input_shape: Sequence[int],
        *,
        batch_size: int = 1,
        threads: int | None = 1,
        warmup: int = 5,
        repeats: int = 30,
        device: str = "cpu",
    ) -> LatencyResult:
        """Time eager forward passes; see :meth:`LatencyBackend.measure`."""
        check_timing_args(batch_size=batch_size, threads=threads, warmup=warmup, repeats=repeats)
        shape = check_input_shape(input_shape)
        dev = resolve_device(device)
        target = model if model_device(model) == dev else copy.deepcopy(model).to(dev)
        x = random_input(batch_size, shape, dtype=model_dtype(model), device=dev)
        sync = dev.type == "cuda"

        def run_once() -> None:
            target(x)
            if sync:
                torch.cuda.synchronize(dev)

        with torch_threads(threads) as used_threads, eval_mode(target), torch.inference_mode():
            runs = time_callable(run_once, warmup=warmup, repeats=repeats)

        env = self.base_env(
            version=torch.__version__,
            threads=used_threads,
            device=str(dev),
            batch_size=batch_size,
            input_shape=shape,
            warmup=warmup,
            repeats=repeats,
        )
        env.update(mode="eager", dtype=str(x.dtype).removeprefix("torch."))
        return LatencyResult.from_runs(runs, env)
