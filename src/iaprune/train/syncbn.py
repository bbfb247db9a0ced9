"""BatchNorm statistics over the global batch of a torchrun job (``--sync-bn``).

Under DistributedDataParallel every process normalises with the statistics of its own
``B / N`` samples, so a BatchNorm-heavy model trains differently on N processes than on
one. :func:`synced_batchnorm` swaps every ``BatchNorm1d/2d/3d`` of a model, in place and
for the duration of a ``with`` block, for a module that normalises with the mean and
variance of the whole global batch:

* on CUDA, torch's :class:`~torch.nn.SyncBatchNorm`;
* elsewhere (gloo on CPU, which torch's class refuses), :class:`AllReduceBatchNorm`:
  per-channel sums all-reduced with the autograd-aware
  :func:`torch.distributed.nn.functional.all_reduce`, so the backward pass sums the
  gradients of the statistics over the processes exactly as ``SyncBatchNorm`` does.

The swapped-in modules share the original parameters and buffers (running statistics
are updated in place), and the originals are put back when the block ends, so the
model's ``state_dict``, checkpoints and exports never see the difference.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["AllReduceBatchNorm", "synced_batchnorm"]


def all_reduce(tensor: Tensor) -> Tensor:
    """The sum of ``tensor`` over the processes, differentiable (the backward sums too).

    torch marks :func:`torch.distributed.nn.functional.all_reduce` deprecated in favour
    of a private module; it is the public autograd-aware collective, so its warning is
    silenced here.
    """
    from torch.distributed.nn.functional import all_reduce as reduce_

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return reduce_(tensor)


_PLAIN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _world() -> int:
    """Processes in the default group (1 when torch.distributed is not initialised)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return int(dist.get_world_size())


class AllReduceBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are those of every process's batch together.

    Outside training, or without an initialised process group of more than one process,
    it is an ordinary BatchNorm.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        if not self.training or _world() == 1:
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        local = float(input.numel() // input.shape[1])
        sums = all_reduce(torch.cat([input.sum(dims), input.new_tensor([local])]))
        count = sums[-1]
        mean = sums[:-1] / count
        centred = input - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / count
        self._track(mean.detach(), var.detach(), float(count.item()))
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out

    @torch.no_grad()
    def _track(self, mean: Tensor, var: Tensor, count: float) -> None:
        """Update the running statistics as BatchNorm does (unbiased variance)."""
        if not self.track_running_stats or self.running_mean is None or self.running_var is None:
            return
        assert self.num_batches_tracked is not None
        self.num_batches_tracked.add_(1)
        tracked = float(self.num_batches_tracked)
        factor = 1.0 / tracked if self.momentum is None else self.momentum  # None: cumulative
        unbiased = var * (count / max(count - 1.0, 1.0))
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)


def _synced(bn: _BatchNorm) -> _BatchNorm:
    """A synchronised twin of ``bn`` sharing its parameters and buffers."""
    on_cuda = bn.weight.is_cuda if bn.weight is not None else False
    if bn.running_mean is not None:
        on_cuda = on_cuda or bn.running_mean.is_cuda
    cls: type[_BatchNorm] = nn.SyncBatchNorm if on_cuda else AllReduceBatchNorm
    twin = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    twin.weight, twin.bias = bn.weight, bn.bias
    twin.running_mean, twin.running_var = bn.running_mean, bn.running_var
    twin.num_batches_tracked = bn.num_batches_tracked
    twin.train(bn.training)
    return twin


@contextmanager
def synced_batchnorm(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Within the block, ``model``'s BatchNorm layers normalise over the global batch.

    Only plain ``BatchNorm1d/2d/3d`` are swapped (subclasses keep their own forward).
    With ``enabled`` false, or in a single process, the model is left as it is.
    """
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    if enabled and _world() > 1:
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if type(child) in _PLAIN:
                    assert isinstance(child, _BatchNorm)
                    setattr(parent, name, _synced(child))
                    swapped.append((parent, name, child))
    try:
        yield model
    finally:
        for parent, name, child in reversed(swapped):
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)
