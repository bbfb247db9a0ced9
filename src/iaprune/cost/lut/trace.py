"""Finding the layers of a model to time: conv/linear calls with their fused BN and activation.

One forward pass with hooks records every ``nn.Conv*d`` and ``nn.Linear`` call and its
per-sample input shape. A conv's BatchNorm (the next call that consumes its output, with
matching width) and that BatchNorm's parameter-free activation are timed with it, because
deployment runtimes fuse them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeGuard

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd as ConvNd

from iaprune.cost.forward import is_leaf, trace_forward
from iaprune.errors import IAPruneError

__all__ = ["ACTIVATIONS", "ConvNd", "LayerSite", "in_width", "is_conv", "out_width", "trace_layers"]

ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SiLU,
    nn.GELU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
    nn.Mish,
)
"""Activations timed together with the conv + BatchNorm they follow."""


@dataclass
class LayerSite:
    """One layer found by tracing: the module, its fused followers and its input shape."""

    name: str
    module: nn.Module
    input_shape: tuple[int, ...]
    norm: nn.Module | None = None
    act: nn.Module | None = None
    calls: int = 1


@dataclass(eq=False)
class _Call:
    index: int
    name: str
    module: nn.Module
    input: Any
    output: Any
    used: bool = False


def is_conv(m: nn.Module) -> TypeGuard[ConvNd]:
    """Whether ``m`` is a (non-transposed) ``nn.Conv1d/2d/3d``."""
    return isinstance(m, ConvNd) and not m.transposed


def trace_layers(model: nn.Module, shape: tuple[int, ...]) -> list[LayerSite]:
    """Conv/linear calls of one forward pass, in order, with their BN and activation."""
    calls: list[_Call] = []

    def record(name: str, module: nn.Module, inputs: tuple[Any, ...], _kw: Any, out: Any) -> None:
        first = inputs[0] if inputs else None
        calls.append(_Call(len(calls), name, module, first, out))

    def select(m: nn.Module) -> bool:
        return is_conv(m) or isinstance(m, nn.Linear) or is_leaf(m)

    trace_forward(model, shape, select, record)

    def consumer(start: int, tensor: Any, kinds: tuple[type[nn.Module], ...]) -> _Call | None:
        for call in calls[start:]:
            if call.input is tensor:
                if isinstance(call.module, kinds) and not call.used:
                    return call
                return None
        return None

    sites: dict[tuple[str, tuple[int, ...]], LayerSite] = {}
    per_module: dict[str, int] = {}
    for i, call in enumerate(calls):
        module = call.module
        if not (is_conv(module) or isinstance(module, nn.Linear)):
            continue
        if not isinstance(call.input, torch.Tensor):
            continue
        in_shape = tuple(int(d) for d in call.input.shape[1:])
        key = (call.name, in_shape)
        if key in sites:
            sites[key].calls += 1
            continue
        k = per_module.get(call.name, 0)
        per_module[call.name] = k + 1
        site = LayerSite(call.name if k == 0 else f"{call.name}#{k}", module, in_shape)
        if is_conv(module):
            norm = consumer(i + 1, call.output, (nn.modules.batchnorm._BatchNorm,))
            if norm is not None and norm.module.num_features == module.out_channels:
                norm.used = True
                site.norm = norm.module
                act = consumer(norm.index + 1, norm.output, ACTIVATIONS)
                if act is not None and not any(True for _ in act.module.parameters()):
                    act.used = True
                    site.act = act.module
        sites[key] = site
    if not sites:
        raise IAPruneError("the model has no conv or linear layer to build a latency table for")
    return list(sites.values())


def in_width(module: nn.Module) -> int:
    """Input features of a linear layer or input channels of a conv."""
    if isinstance(module, nn.Linear):
        return int(module.in_features)
    if is_conv(module):
        return int(module.in_channels)
    raise TypeError(f"not a conv or linear layer: {type(module).__name__}")


def out_width(module: nn.Module) -> int:
    """Output features of a linear layer or output channels of a conv."""
    if isinstance(module, nn.Linear):
        return int(module.out_features)
    if is_conv(module):
        return int(module.out_channels)
    raise TypeError(f"not a conv or linear layer: {type(module).__name__}")
