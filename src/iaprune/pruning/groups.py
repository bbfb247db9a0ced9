"""Independent channel groups of a model, found with torch-pruning's DependencyGraph.

A *channel group* is a set of layers whose output channels must be removed together:
a plain conv and its BatchNorm, or every conv feeding the same residual sum. The search
has one variable per group (ResNet34: 20 groups for its 36 convs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from iaprune.errors import IAPruneError


@dataclass(frozen=True)
class ChannelGroup:
    """One independent channel group.

    ``name`` is the first (in module order) conv of the group; ``channels`` its width;
    ``convs`` every conv whose output channels belong to the group; ``norms`` the
    normalisation layers pruned with them; ``consumers`` the convs and linears whose
    *input* channels are these channels (what a latency table needs to know a layer's
    input width).
    """

    name: str
    channels: int
    convs: tuple[str, ...]
    norms: tuple[str, ...]
    consumers: tuple[str, ...] = ()


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd) and not module.transposed


def _is_out_pruning(handler: object) -> bool:
    return getattr(handler, "__name__", "") == "prune_out_channels"


def classifier_convs(model: nn.Module, example_input: torch.Tensor) -> list[nn.Module]:
    """Convs that produce the logits (a conv after which no Linear runs), to leave intact."""
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
        for m in model.modules()
        if _is_conv(m) or isinstance(m, nn.Linear)
    ]
    try:
        with torch.no_grad():
            model.eval()
            model(example_input)
    finally:
        for h in hooks:
            h.remove()
    if order and _is_conv(order[-1]):
        return [order[-1]]
    return []


def build_graph(model: nn.Module, example_input: torch.Tensor) -> tp.DependencyGraph:
    """Trace ``model`` once; raises a one-line error when tracing fails."""
    was_training = model.training
    model.eval()
    try:
        return tp.DependencyGraph().build_dependency(model, example_input, verbose=False)
    except Exception as exc:  # torch-pruning raises many kinds of errors when tracing fails
        raise IAPruneError(f"could not trace the model's channel dependencies: {exc}") from exc
    finally:
        model.train(was_training)


def find_groups(
    model: nn.Module, example_input: torch.Tensor, graph: tp.DependencyGraph | None = None
) -> list[ChannelGroup]:
    """Prunable channel groups of ``model`` in module order.

    Linear layers and a final classifier conv are never pruned on their output side.
    Raises :class:`IAPruneError` when the model has no prunable conv.
    """
    graph = graph or build_graph(model, example_input)
    names = {m: n for n, m in model.named_modules()}
    order = {n: i for i, n in enumerate(names.values())}
    ignored = {names[m] for m in classifier_convs(model, example_input)}
    groups: list[ChannelGroup] = []
    seen: set[str] = set()
    for module, name in names.items():
        if not _is_conv(module) or name in ignored or name in seen:
            continue
        group = graph.get_pruning_group(
            module, tp.prune_conv_out_channels, list(range(module.out_channels))
        )
        convs, norms, consumers = _members(group, names)
        seen.update(convs)
        if set(convs) & ignored:
            continue
        if module.out_channels < 2:
            continue
        ordered = sorted(convs, key=order.__getitem__)
        groups.append(
            ChannelGroup(ordered[0], module.out_channels, tuple(ordered), norms, consumers)
        )
    if not groups:
        raise IAPruneError("the model has no prunable conv layer (need a Conv2d with >= 2 filters)")
    return groups


def _members(
    group: tp.Group, names: dict[nn.Module, str]
) -> tuple[list[str], tuple[str, ...], tuple[str, ...]]:
    convs: list[str] = []
    norms: list[str] = []
    consumers: list[str] = []
    for item in group:
        module = item.dep.target.module
        if module not in names:
            continue
        if not _is_out_pruning(item.dep.handler):
            if _is_conv(module) or isinstance(module, nn.Linear):
                consumers.append(names[module])
            continue
        if _is_conv(module):
            convs.append(names[module])
        elif isinstance(module, nn.modules.batchnorm._BatchNorm | nn.GroupNorm | nn.LayerNorm):
            norms.append(names[module])
    return (
        list(dict.fromkeys(convs)),
        tuple(dict.fromkeys(norms)),
        tuple(dict.fromkeys(consumers)),
    )
