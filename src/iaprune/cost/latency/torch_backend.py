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
from iaprune.errors import IAPruneError

INPUT_SEED = 0
"""Seed of the generator that draws the random timing input."""


def _resolve_device(device: str) -> torch.device:
    """Parse ``device`` and check it exists; ``cuda`` becomes ``cuda:<current>``."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise IAPruneError(f"invalid device {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise IAPruneError(f"device {device!r} requested but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    return dev


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
        dev = _resolve_device(device)
        target = model if model_device(model) == dev else copy.deepcopy(model).to(dev)

        gen = torch.Generator().manual_seed(INPUT_SEED)
        x = torch.randn((batch_size, *shape), generator=gen, dtype=model_dtype(model)).to(dev)
        sync = dev.type == "cuda"

        def run_once() -> None:
            target(x)
            if sync:
                torch.cuda.synchronize(dev)

        previous_threads = torch.get_num_threads()
        try:
            if threads is not None:
                torch.set_num_threads(threads)
            used_threads = torch.get_num_threads()
            with eval_mode(target), torch.inference_mode():
                runs = time_callable(run_once, warmup=warmup, repeats=repeats)
        finally:
            if torch.get_num_threads() != previous_threads:
                torch.set_num_threads(previous_threads)

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
