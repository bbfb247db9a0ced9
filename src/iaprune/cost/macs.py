"""Static compute cost: multiply-accumulates (MACs) and parameter counts.

Convention
----------
Only convolution and fully connected layers are counted, which is the usual
convention of the filter-pruning literature (the reported "FLOPs" of pruned
ResNets/VGGs are ``2 * MACs`` of conv + linear layers). Batch norm, activations,
pooling, element-wise additions, biases and functional ops called directly in a
``forward`` (``F.conv2d``, ``torch.matmul``, ...) are *not* counted, so the numbers
are lower than e.g. ``torch_pruning.utils.count_ops_and_params``, which counts
more layer types.

Per layer, for one sample:

* ``nn.Conv{1,2,3}d``: ``output_elements * in_channels / groups * prod(kernel_size)``
* ``nn.ConvTranspose{1,2,3}d``: ``input_elements * out_channels / groups * prod(kernel_size)``
* ``nn.Linear``: ``in_features * out_features`` per row, i.e.
  ``output_elements * in_features`` (inputs with extra leading dims count every row)

A module called several times in one forward pass is counted every time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn

from iaprune.cost._util import check_input_shape
from iaprune.cost.forward import trace_forward


def _layer_macs(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> int:
    """MACs of one call of a conv/linear ``module``; 0 for anything else."""
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = math.prod(module.kernel_size)
        if module.transposed:
            return inputs[0].numel() * (module.out_channels // module.groups) * kernel
        return output.numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    return 0


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on ONE sample.

    Runs a single batch-1 forward pass of zeros shaped ``(1, *input_shape)`` on the
    model's device, in eval mode and without gradients, counting conv and linear
    layers only (see the module docstring for the convention). Every submodule's
    ``training`` flag is restored afterwards, and parameters and buffers are left
    unchanged. FLOPs are ``2 * MACs``.

    Args:
        model: any ``nn.Module`` built from ``nn.Conv*d`` / ``nn.Linear`` layers.
        input_shape: per-sample input shape, e.g. ``(3, 32, 32)``.
    """
    shape = check_input_shape(input_shape)
    total = 0

    def hook(_name: str, module: nn.Module, args: tuple[Any, ...], _kw: Any, output: Any) -> None:
        nonlocal total
        total += _layer_macs(module, args, output)

    trace_forward(model, shape, lambda m: isinstance(m, nn.modules.conv._ConvNd | nn.Linear), hook)
    return int(total)


def count_params(model: nn.Module) -> int:
    """Number of parameters of ``model`` (trainable or not; shared ones counted once).

    Buffers such as batch-norm running statistics are not parameters and are not counted.
    """
    return int(sum(p.numel() for p in model.parameters()))
