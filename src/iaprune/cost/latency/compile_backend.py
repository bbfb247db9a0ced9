"""``torch.compile`` latency backend (``"torch-compile"``, inductor)."""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Sequence

import torch
from torch import nn

from iaprune.cost._util import check_input_shape, eval_mode, model_dtype
from iaprune.cost.latency._base import (
    BACKENDS,
    LatencyBackend,
    LatencyResult,
    check_timing_args,
    time_callable,
)
from iaprune.cost.latency._torch_util import random_input, resolve_device, torch_threads
from iaprune.errors import IAPruneError


@BACKENDS.register("torch-compile")
class TorchCompileBackend(LatencyBackend):
    """Times ``torch.compile(model, mode="max-autotune-no-cudagraphs")`` after warm-up.

    Compilation happens during the first warm-up call (at least one is always run), so
    the timed runs see the compiled graph. Inductor needs a C++ compiler on the CPU;
    the backend reports itself unavailable without one. Compiling costs seconds per
    model, so it suits final measurements more than per-trial search.
    """

    name = "torch-compile"
    preferred_multiple = 8

    @classmethod
    def available(cls) -> bool:
        """Whether a C/C++ compiler for inductor's CPU code is on the PATH."""
        import shutil

        has_cc = any(shutil.which(c) for c in ("cc", "gcc", "clang", "c++", "g++"))
        return has_cc and importlib.util.find_spec("torch._inductor") is not None

    @classmethod
    def unavailable_error(cls) -> IAPruneError:
        """Says that inductor needs a compiler."""
        return IAPruneError(
            "latency backend 'torch-compile' needs a C++ compiler (gcc/clang) on the PATH"
        )

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
        """Compile and time; see :meth:`LatencyBackend.measure`."""
        check_timing_args(batch_size=batch_size, threads=threads, warmup=warmup, repeats=repeats)
        shape = check_input_shape(input_shape)
        dev = resolve_device(device)
        target = copy.deepcopy(model).to(dev)
        x = random_input(batch_size, shape, dtype=model_dtype(model), device=dev)
        sync = dev.type == "cuda"
        with torch_threads(threads) as used_threads, eval_mode(target), torch.no_grad():
            try:
                compiled = torch.compile(target, mode="max-autotune-no-cudagraphs")
                compiled(x)
            except Exception as exc:
                text = " ".join(str(exc).split())[:300]
                raise IAPruneError(f"torch.compile failed: {text}") from exc

            def run_once() -> None:
                compiled(x)
                if sync:
                    torch.cuda.synchronize(dev)

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
        env.update(mode="inductor", compile_mode="max-autotune-no-cudagraphs")
        return LatencyResult.from_runs(runs, env)
