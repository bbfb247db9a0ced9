"""TorchScript latency backend (``"torchscript"``): traced, frozen, optimised for inference."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from iaprune.cost._util import check_input_shape, model_dtype
from iaprune.cost.latency._base import (
    BACKENDS,
    LatencyBackend,
    LatencyResult,
    check_timing_args,
    time_callable,
)
from iaprune.cost.latency._torch_util import random_input, resolve_device, torch_threads


@BACKENDS.register("torchscript")
class TorchScriptBackend(LatencyBackend):
    """Times a ``torch.jit.trace`` + ``torch.jit.freeze`` copy of the model.

    Freezing folds BatchNorm into the convolutions; ``optimize_for_inference`` is
    applied where it works (the env records whether it was). The copy is made on the
    requested device, so the caller's model is untouched.
    """

    name = "torchscript"
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
        """Trace, freeze and time; see :meth:`LatencyBackend.measure`."""
        import copy

        from iaprune.export import optimize_scripted, trace_frozen

        check_timing_args(batch_size=batch_size, threads=threads, warmup=warmup, repeats=repeats)
        shape = check_input_shape(input_shape)
        dev = resolve_device(device)
        x = random_input(batch_size, shape, dtype=model_dtype(model), device=dev)
        sync = dev.type == "cuda"
        with torch_threads(threads) as used_threads:
            scripted, optimized = optimize_scripted(trace_frozen(copy.deepcopy(model).to(dev), x))

            def run_once() -> None:
                scripted(x)
                if sync:
                    torch.cuda.synchronize(dev)

            with torch.inference_mode():
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
        env.update(mode="torchscript-frozen", optimize_for_inference=optimized)
        return LatencyResult.from_runs(runs, env)
