"""Which widths of a traced layer to measure, and the stand-alone module timed at each.

:func:`plan_layer` maps a layer's input and output widths onto the channel groups (see
the package docstring) and picks its width grid; :func:`build_block` rebuilds the layer
(with its BatchNorm and activation) at given widths as a small module to time.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from iaprune.cost.lut.entry import LayerKind
from iaprune.cost.lut.grid import channel_grid
from iaprune.cost.lut.trace import LayerSite, in_width, is_conv, out_width
from iaprune.inference import model_dtype

if TYPE_CHECKING:
    from iaprune.pruning.groups import ChannelGroup

__all__ = ["LayerPlan", "block_input", "block_ops", "build_block", "plan_layer"]

log = logging.getLogger(__name__)

_CONV_CLASSES: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


@dataclass(frozen=True)
class LayerPlan:
    """How a traced layer's widths follow the groups, and which widths to measure."""

    kind: LayerKind
    out_group: str | None
    in_groups: tuple[str, ...]
    in_fixed: int
    in_mult: int
    in_grid: tuple[int, ...]
    out_grid: tuple[int, ...]


def plan_layer(
    site: LayerSite,
    groups: Sequence[ChannelGroup],
    ratios: Sequence[float],
    multiple: int = 8,
    *,
    strict: bool = False,
    vector: int = 1,
) -> LayerPlan:
    """How ``site``'s widths follow ``groups`` and which ``(in, out)`` widths to measure.

    ``ratios`` are the keep-ratios of the grid (:func:`~iaprune.cost.lut.grid.grid_ratios`);
    grid points below the full width are rounded to multiples of ``multiple`` (the
    table's channel step, the widths a search proposes; always with
    ``strict``, else only where the grid stays fine, see
    :func:`~iaprune.cost.lut.grid.channel_grid`). ``vector``: the runtime's vector
    width; an axis that is one group's width gets points on both sides of each vector
    block (:func:`~iaprune.cost.lut.grid.channel_grid`).
    """
    module = site.module
    base = site.name.split("#", 1)[0]
    in_full, out_full = in_width(module), out_width(module)
    out_groups = [g for g in groups if base in g.convs]
    in_groups = [g for g in groups if base in g.consumers]
    out_group = out_groups[0] if out_groups else None

    def axis(variable: int, fixed: int, mult: int, n_groups: int) -> tuple[int, ...]:
        if variable <= 0:
            return (fixed + variable,)
        minimum = max(mult * n_groups, 1)
        one_group = fixed == 0 and mult == 1 and n_groups == 1
        values = channel_grid(
            variable,
            ratios,
            multiple=multiple * mult,
            minimum=minimum,
            strict=strict,
            vector=vector if one_group else 1,
        )
        return tuple(fixed + v for v in values)

    fixed = LayerPlan("fixed", None, (), in_full, 1, (in_full,), (out_full,))
    if is_conv(module) and module.groups > 1:
        depthwise = module.groups == in_full == out_full
        source = out_group or (in_groups[0] if len(in_groups) == 1 else None)
        if not depthwise or source is None:
            return fixed
        return LayerPlan("depthwise", source.name, (), 0, 1, (in_full,), axis(out_full, 0, 1, 1))

    out_grid: tuple[int, ...] = (out_full,)
    if out_group is not None and not isinstance(module, nn.Linear):
        out_grid = axis(out_full, 0, 1, 1)
    covered = sum(g.channels for g in in_groups)
    mult, in_fixed = 1, in_full - covered
    if in_groups and isinstance(module, nn.Linear) and in_full > covered and in_full % covered == 0:
        mult, in_fixed = in_full // covered, 0
    if in_fixed < 0:  # the groups do not add up to this layer's input: leave it unpruned
        log.warning("latency table: cannot map the input width of %s to groups", site.name)
        in_groups, mult, in_fixed = [], 1, in_full
    in_grid = axis(mult * covered if in_groups else 0, in_fixed, mult, len(in_groups))
    kind: LayerKind = "linear" if isinstance(module, nn.Linear) else "conv"
    return LayerPlan(
        kind,
        None if isinstance(module, nn.Linear) or out_group is None else out_group.name,
        tuple(g.name for g in in_groups),
        in_fixed,
        mult,
        in_grid,
        out_grid,
    )


def build_block(site: LayerSite, kind: LayerKind, cin: int, cout: int) -> nn.Module:
    """A stand-alone module computing the layer (with its BN / activation) at ``cin, cout``."""
    module = site.module
    parts: list[nn.Module] = []
    if isinstance(module, nn.Linear):
        parts.append(nn.Linear(cin, cout, bias=module.bias is not None))
    elif not is_conv(module):
        raise TypeError(f"not a conv or linear layer: {type(module).__name__}")
    else:
        cls = _CONV_CLASSES[len(module.kernel_size)]
        groups = cout if kind == "depthwise" else module.groups
        parts.append(
            cls(
                cin,
                cout,
                module.kernel_size,
                stride=module.stride,
                padding=module.padding,
                dilation=module.dilation,
                groups=groups,
                bias=module.bias is not None,
                padding_mode=module.padding_mode,
            )
        )
        if site.norm is not None:
            norm = site.norm
            parts.append(
                type(norm)(
                    cout,
                    eps=norm.eps,
                    momentum=norm.momentum,
                    affine=norm.affine,
                    track_running_stats=norm.track_running_stats,
                )
            )
        if site.act is not None:
            parts.append(copy.deepcopy(site.act))
    block = parts[0] if len(parts) == 1 else nn.Sequential(*parts)
    return block.to(model_dtype(module)).eval()


def block_input(site: LayerSite, cin: int) -> tuple[int, ...]:
    """Per-sample input shape of ``site``'s block with ``cin`` input channels/features."""
    if isinstance(site.module, nn.Linear):
        return (*site.input_shape[:-1], cin)
    return (cin, *site.input_shape[1:])


def block_ops(site: LayerSite) -> tuple[str, ...]:
    """Class names of the modules timed together, e.g. ``("Conv2d", "BatchNorm2d", "ReLU")``."""
    mods = [site.module, site.norm, site.act]
    return tuple(type(m).__name__ for m in mods if m is not None)
