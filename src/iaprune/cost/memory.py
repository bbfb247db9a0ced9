"""Peak activation memory estimate.

The estimate models a *sequential executor* that runs one leaf module at a time and
only needs that module's inputs and outputs alive while it runs:

    peak = max over leaf-module calls of (bytes of its input tensors + bytes of its output tensors)

for a batch of one sample, with every element costing ``dtype_bytes`` (4 = float32),
whatever dtype the model actually runs in. Tensors that share storage (in-place ops
such as ``ReLU(inplace=True)``, views such as ``Flatten``) are counted once per call.

It is a lower bound of what a real runtime uses: it ignores tensors kept alive
across layers (residual/skip connections, concatenations), tensors created by
functional ops between modules, weights, and framework workspace/allocator
overhead. It is meant for comparing widths of the same architecture, where it
tracks the largest feature map, not for predicting absolute memory use.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from iaprune.cost._util import check_input_shape
from iaprune.cost.forward import is_leaf, trace_forward


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside ``obj`` (tensors, and lists/tuples/dicts of them)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, list | tuple):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


def _live_elements(*objs: Any) -> int:
    """Elements of the distinct tensors in ``objs``; tensors sharing storage count once."""
    by_storage: dict[tuple[str, int], int] = {}
    for tensor in _tensors(objs):
        key = (str(tensor.device), tensor.untyped_storage().data_ptr())
        by_storage[key] = max(by_storage.get(key, 0), tensor.numel())
    return sum(by_storage.values())


def peak_activation_bytes(
    model: nn.Module, input_shape: Sequence[int], dtype_bytes: int = 4
) -> int:
    """Estimated peak activation memory of one batch-1 forward pass, in bytes.

    ``max`` over calls of leaf modules (modules without children) of input plus
    output tensor bytes, see the module docstring for what this does and does not
    include. Runs one forward pass of zeros in eval mode without gradients; the
    model's ``training`` flags are restored afterwards.

    Args:
        model: the network.
        input_shape: per-sample input shape, e.g. ``(3, 32, 32)``.
        dtype_bytes: bytes per element (4 for float32, 2 for float16/bfloat16).
    """
    shape = check_input_shape(input_shape)
    if dtype_bytes <= 0:
        raise ValueError(f"dtype_bytes must be positive, got {dtype_bytes}")
    peak = 0

    def hook(_name: str, _m: nn.Module, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        nonlocal peak
        peak = max(peak, _live_elements(args, kwargs, output))

    x, output = trace_forward(model, shape, is_leaf, hook)
    if peak == 0:  # no leaf module ran (purely functional model): whole model as one op
        peak = _live_elements(x, output)
    return int(peak * dtype_bytes)
