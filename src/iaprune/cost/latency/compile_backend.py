"""``torch.compile`` latency backend (``"torch-compile"``, inductor)."""

from __future__ import annotations

import copy
import importlib.util
import shutil

import torch
from torch import nn

from iaprune.cost.latency._base import (
    BACKENDS,
    LatencyBackend,
    Timing,
    TimingSettings,
    time_callable,
)
from iaprune.cost.latency._torch_util import random_input, resolve_device, torch_threads
from iaprune.errors import IAPruneError, one_line
from iaprune.inference import eval_mode, model_dtype

COMPILE_MODE = "max-autotune-no-cudagraphs"
"""The ``torch.compile`` mode used for timing."""


@BACKENDS.register("torch-compile")
class TorchCompileBackend(LatencyBackend):
    """Times ``torch.compile(model, mode=COMPILE_MODE)`` after compiling on the first call.

    Compilation happens before the warm-up, so the timed runs see the compiled graph.
    Inductor needs a C++ compiler on the CPU; the backend reports itself unavailable
    without one. Compiling costs seconds per model, so it suits final measurements more
    than per-trial search.
    """

    name = "torch-compile"
    preferred_multiple = 8

    @classmethod
    def available(cls) -> bool:
        """Whether a C/C++ compiler for inductor's CPU code is on the PATH."""
        has_cc = any(shutil.which(c) for c in ("cc", "gcc", "clang", "c++", "g++"))
        return has_cc and importlib.util.find_spec("torch._inductor") is not None

    @classmethod
    def unavailable_error(cls) -> IAPruneError:
        """Says that inductor needs a compiler."""
        return IAPruneError(
            "latency backend 'torch-compile' needs a C++ compiler (gcc/clang) on the PATH"
        )

    def time_runs(
        self, model: nn.Module, shape: tuple[int, ...], settings: TimingSettings
    ) -> Timing:
        """Compile and time; see :meth:`LatencyBackend.measure`."""
        dev = resolve_device(settings.device)
        target = copy.deepcopy(model).to(dev)
        x = random_input(settings.batch_size, shape, dtype=model_dtype(model), device=dev)
        sync = dev.type == "cuda"
        with torch_threads(settings.threads) as used_threads, eval_mode(target), torch.no_grad():
            try:
                compiled = torch.compile(target, mode=COMPILE_MODE)
                compiled(x)
            except Exception as exc:
                raise IAPruneError(f"torch.compile failed: {one_line(exc)}") from exc

            def run_once() -> None:
                compiled(x)
                if sync:
                    torch.cuda.synchronize(dev)

            runs = time_callable(run_once, warmup=settings.warmup, repeats=settings.repeats)
        extra = {"mode": "inductor", "compile_mode": COMPILE_MODE}
        return Timing(runs, torch.__version__, used_threads, str(dev), extra)
