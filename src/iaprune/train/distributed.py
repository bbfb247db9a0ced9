"""Data-parallel training under ``torchrun``: DistributedDataParallel, sharded data.

``torchrun --nproc-per-node N -m iaprune.cli.main finetune RUN_DIR`` starts N processes;
:func:`init` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``),
joins the process group (NCCL on GPUs, gloo on CPU) and gives each process its GPU.
Without torchrun every function here is the single-process identity.

Same global batch for any N. :func:`train_loader` shards one seeded permutation per
epoch (:class:`~torch.utils.data.DistributedSampler`, ``seed`` + epoch) with a
per-process batch of ``batch_size / N``: process ``r`` takes positions ``r, r+N, ...``,
so global batch ``j`` is positions ``[j*B, (j+1)*B)`` of the permutation, exactly the
batch a single process (N = 1) trains on. DDP averages the per-process mean losses'
gradients, i.e. the mean over the global batch. BatchNorm normalises with the global
batch's statistics when fine-tuning with ``sync_bn`` (:mod:`iaprune.train.syncbn`;
otherwise with each process's own B/N samples). With a dataset size not divisible by N
the sampler repeats up to N-1 samples. Validation is sharded without repeats and summed
across processes (:func:`evaluate`), so every process selects the same best epoch.

Only rank 0 writes checkpoints and reports (:attr:`DistContext.main`); every process
resumes from the same checkpoint file, so a multi-node run needs a shared run directory.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from iaprune.errors import IAPruneError
from iaprune.train.loop import evaluate as evaluate_local

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """Whether several processes train together."""
        return self.world > 1

    @property
    def main(self) -> bool:
        """Whether this process writes files and reports (rank 0)."""
        return self.rank == 0


def from_env() -> DistContext:
    """The context torchrun's environment variables describe."""
    try:
        return DistContext(
            rank=int(os.environ.get("RANK", "0")),
            world=int(os.environ.get("WORLD_SIZE", "1")),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        )
    except ValueError as exc:
        raise IAPruneError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {exc}") from exc


def init(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join torchrun's process group (once) and return the context and this rank's device.

    On CUDA each process uses ``cuda:LOCAL_RANK`` and NCCL; on CPU gloo. Ranks other
    than 0 log warnings only and show no progress bars.
    """
    ctx = from_env()
    if not ctx.active:
        return ctx, device
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(_shutdown)
        if not ctx.main:
            from iaprune.progress import set_progress

            set_progress(False)
            logging.getLogger("iaprune").setLevel(logging.WARNING)
        log.info("torchrun: %d processes, backend %s", ctx.world, dist.get_backend())
    return ctx, device


def _shutdown() -> None:
    """Leave the process group together: a rank that destroys it while rank 0 still writes
    the report aborts in gloo's threads ("terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op without torchrun)."""
    if ctx.active:
        import torch.distributed as dist

        dist.barrier()


def train_loader(loader: DataLoader[Any], ctx: DistContext, *, seed: int) -> DataLoader[Any]:
    """``loader``'s data as this process's shard of one seeded permutation per epoch.

    The per-process batch is ``loader.batch_size / world``; call :func:`set_epoch`
    before each epoch. With one process this is a seeded shuffle whose order depends on
    the epoch only (a resumed training sees the same order as an uninterrupted one).
    """
    batch = loader.batch_size or 1
    if batch % ctx.world:
        raise IAPruneError(
            f"--batch-size {batch} is not divisible by the {ctx.world} torchrun processes"
        )
    sampler: DistributedSampler[Any] = DistributedSampler(
        loader.dataset, num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=seed
    )
    return DataLoader(
        loader.dataset,
        batch_size=batch // ctx.world,
        sampler=sampler,
        num_workers=loader.num_workers,
        persistent_workers=loader.num_workers > 0,
    )


def set_epoch(loader: Iterable[Any], epoch: int) -> None:
    """Select the permutation of ``epoch`` (loaders from :func:`train_loader`; others: no-op)."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)


def wrap(model: nn.Module, ctx: DistContext) -> nn.Module:
    """``model`` in DistributedDataParallel when several processes train, else itself."""
    if not ctx.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def mean(value: float, ctx: DistContext) -> float:
    """The mean of ``value`` over the processes (``value`` itself without torchrun)."""
    if not ctx.active:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=_device(ctx))
    dist.all_reduce(t)
    return t.item() / ctx.world


def _device(ctx: DistContext) -> torch.device:
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader[Any], ctx: DistContext, *, desc: str = "eval"
) -> dict[str, float]:
    """:func:`iaprune.train.evaluate` over ``loader``'s data, split across the processes.

    Process ``r`` evaluates samples ``r, r+N, ...`` (no sample twice) and the sums are
    added up, so every process gets the metrics of the whole data set.
    """
    if not ctx.active:
        return evaluate_local(model, loader, desc=desc)
    import torch.distributed as dist

    shard = Subset(loader.dataset, range(ctx.rank, len(loader.dataset), ctx.world))  # type: ignore[arg-type]
    local = DataLoader(shard, batch_size=loader.batch_size, num_workers=loader.num_workers)
    metrics = evaluate_local(model, local, desc=desc) if len(shard) else {"top1": 0.0, "loss": 0.0}
    keys = sorted(metrics)
    sums = torch.tensor(
        [metrics[k] * len(shard) for k in keys] + [float(len(shard))],
        dtype=torch.float64,
        device=_device(ctx),
    )
    dist.all_reduce(sums)
    total = max(sums[-1].item(), 1.0)
    return {k: sums[i].item() / total for i, k in enumerate(keys)}
