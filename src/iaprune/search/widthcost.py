"""Exact MACs and parameter counts of a pruned model from its kept widths, without pruning.

The search projects every candidate onto the budget by bisection (see
:mod:`iaprune.search.projection`), which needs the cost of hundreds of width
configurations per trial; pruning and counting each one would take seconds. The costs
are cheap to write down instead, because pruning a channel group changes every layer's
dimensions *linearly* in the group's kept count:

* a conv's output channels and input channels per conv-group, a linear layer's input
  features (``channels x spatial positions`` after a flatten) and a norm's features are
  each ``d_0 + sum_g b_g (k_g - C_g)`` for kept counts ``k_g`` of groups of width ``C_g``;
* a conv's MACs are ``positions x kernel x out x in_per_group`` and its weights
  ``kernel x out x in_per_group`` (+ ``out`` biases), a linear layer's likewise.

So MACs and params are quadratic in the kept counts. The coefficients ``b_g`` are read
off the model by *probing*: each group is pruned once on its own and every layer's
dimensions are compared with the unpruned ones. This needs no knowledge of how layers
are wired (residual sums, concatenations, depthwise convs, flattens), only that
:class:`~iaprune.pruning.Pruner` prunes correctly, and the result is checked against
:func:`~iaprune.cost.macs.count_macs` in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from iaprune.cost import count_macs, count_params
from iaprune.cost.forward import trace_forward
from iaprune.pruning import ChannelGroup, Pruner

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


@dataclass(frozen=True)
class _Layer:
    """Static factors of one conv/linear/norm layer."""

    name: str
    positions: int  # MACs per (out channel x in channel per group) in one forward
    kernel: int  # weights per (out channel x in channel per group)
    bias: bool
    norm: bool  # a norm layer: params = affine x features, no MACs


def _dims(module: nn.Module) -> tuple[int, int]:
    """(out channels, in channels per conv-group) of a conv/linear; (features, 0) of a norm."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.out_channels, module.in_channels // module.groups
    if isinstance(module, nn.Linear):
        return module.out_features, module.in_features
    if isinstance(module, nn.GroupNorm):
        return module.num_channels, 0
    if isinstance(module, nn.LayerNorm):
        return math.prod(module.normalized_shape), 0
    features = module.num_features
    assert isinstance(features, int)
    return features, 0


def _allowed_probe(group: ChannelGroup, wanted: int) -> int | None:
    """The allowed keep count below the group's width nearest ``wanted`` (None: there is none)."""
    below = [k for k in group.allowed_keeps() if k < group.channels]
    if not below:
        return None
    return max((k for k in below if k <= wanted), default=below[0])


def _is_counted(module: nn.Module) -> bool:
    if isinstance(module, nn.modules.conv._ConvNd):
        return not module.transposed
    return isinstance(module, (nn.Linear, *_NORMS))


class WidthCost:
    """MACs and params (per sample) of ``pruner``'s model pruned to any kept widths.

    Args:
        pruner: the pruner over the unpruned model; its ``groups`` are the variables.
        input_shape: per-sample input shape, e.g. ``(3, 32, 32)``.
        probe: kept count used to probe each group (default: half its width), rounded
            down to a count the group allows (a multiple of its ``multiple``, at least one).
    """

    def __init__(
        self,
        pruner: Pruner,
        input_shape: Sequence[int],
        *,
        probe: Callable[[str, int], int] | None = None,
    ) -> None:
        self.groups = [g.name for g in pruner.groups]
        self.widths = np.array([g.channels for g in pruner.groups], dtype=float)
        model = pruner.model
        self.layers = self._layers(model, tuple(input_shape))
        base = self._layer_dims(model)
        self.out0 = np.array([base[la.name][0] for la in self.layers], dtype=float)
        self.in0 = np.array([base[la.name][1] for la in self.layers], dtype=float)
        self.b_out = np.zeros((len(self.layers), len(self.groups)))
        self.b_in = np.zeros_like(self.b_out)
        probe = probe or (lambda _name, width: max(1, width // 2))
        for j, group in enumerate(pruner.groups):
            k = _allowed_probe(group, probe(group.name, group.channels))
            if k is None:
                continue
            dims = self._layer_dims(pruner.prune({group.name: k}))
            delta = group.channels - k
            for i, layer in enumerate(self.layers):
                out, inp = dims[layer.name]
                self.b_out[i, j] = (self.out0[i] - out) / delta
                self.b_in[i, j] = (self.in0[i] - inp) / delta
        self.positions = np.array([la.positions for la in self.layers], dtype=float)
        self.kernel = np.array([la.kernel for la in self.layers], dtype=float)
        self.bias = np.array([la.bias for la in self.layers], dtype=float)
        self.is_norm = np.array([la.norm for la in self.layers], dtype=bool)
        full_macs, full_params = self._evaluate(self.widths)
        self.base_macs = count_macs(model, input_shape)
        self.base_params = count_params(model)
        # parameters of layers the model does not expose as conv/linear/norm stay constant
        self.other_params = self.base_params - full_params
        self.other_macs = self.base_macs - full_macs

    @staticmethod
    def _layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[_Layer]:
        positions: dict[str, int] = {}

        def hook(name: str, module: nn.Module, _args: Any, _kw: Any, output: Any) -> None:
            positions[name] = positions.get(name, 0) + output.numel() // _dims(module)[0]

        trace_forward(model, input_shape, _is_counted, hook)
        layers = []
        for name, m in model.named_modules():
            if name not in positions:
                continue
            norm = isinstance(m, _NORMS)
            kernel = math.prod(m.kernel_size) if isinstance(m, nn.modules.conv._ConvNd) else 1
            affine = sum(p.numel() for p in m.parameters(recurse=False)) if norm else 0
            features = _dims(m)[0]
            layers.append(
                _Layer(
                    name,
                    0 if norm else positions[name],
                    affine // max(features, 1) if norm else kernel,
                    bool(getattr(m, "bias", None) is not None) and not norm,
                    norm,
                )
            )
        return layers

    def _layer_dims(self, model: nn.Module) -> dict[str, tuple[int, int]]:
        modules = dict(model.named_modules())
        return {la.name: _dims(modules[la.name]) for la in self.layers}

    def _evaluate(self, keep: np.ndarray) -> tuple[float, float]:
        shrink = self.widths - keep
        out = self.out0 - self.b_out @ shrink
        inp = self.in0 - self.b_in @ shrink
        weights = np.where(self.is_norm, self.kernel * out, self.kernel * out * inp)
        params = float(np.sum(weights + self.bias * out))
        macs = float(np.sum(self.positions * self.kernel * out * inp))
        return macs, params

    def vector(self, keep: Mapping[str, int]) -> np.ndarray:
        """Kept counts as an array in group order (missing groups keep everything)."""
        return np.array(
            [keep.get(n, w) for n, w in zip(self.groups, self.widths, strict=True)], dtype=float
        )

    def costs(self, keep: Mapping[str, int] | np.ndarray) -> dict[str, float]:
        """``{"macs": .., "params": ..}`` of the model pruned to ``keep``."""
        vec = keep if isinstance(keep, np.ndarray) else self.vector(keep)
        macs, params = self._evaluate(vec)
        return {"macs": macs + self.other_macs, "params": params + self.other_params}

    def ratios(self, keep: Mapping[str, int] | np.ndarray) -> dict[str, float]:
        """Cost ratios to the unpruned model, keyed like :meth:`CostReport.ratio_to`."""
        c = self.costs(keep)
        return {"macs": c["macs"] / self.base_macs, "params": c["params"] / self.base_params}
