"""Independent channel groups of a model, found with torch-pruning's DependencyGraph.

A *channel group* is a set of layers whose output channels must be removed together:
a plain conv and its BatchNorm, or every conv feeding the same residual sum. The search
has one variable per group (ResNet34: 20 groups for its 36 convs).

Grouped convolutions (``1 < groups`` and not depthwise) split their input and output
channels into ``groups`` equal slices that never mix. A channel group that is a grouped
conv's whole input or output can only shrink by the same amount in every slice: its
keep count must be a multiple of ``groups`` (:attr:`ChannelGroup.multiple`, the least
common multiple over all such convs) and the kept channels sit at the same positions in
every slice (:meth:`ChannelGroup.default_indices`, :meth:`ChannelGroup.check_indices`).
A channel group that cannot shrink correctly is left at full width and listed as an
:class:`ExcludedGroup` with the reason:

* it is only part of a grouped conv's input or output (e.g. one branch of a concat);
* the grouped conv needs every channel (``multiple == channels``, e.g. the input of a
  depthwise conv with a channel multiplier);
* a conv with ``groups == out_channels != in_channels``, which torch-pruning 1.6 mistakes
  for a depthwise conv, or a grouped transposed conv touches it;
* a layer of the group holds channel-sized state that torch-pruning does not prune (a
  subclass of a conv or norm with a parameter or buffer of its own, e.g. a weight mask).

A concat of a conv's output with a copy computed from it (GhostNet's ghost module:
``cat([x, dw(x)])``) couples channel ``c`` to ``c + C/2``: torch-pruning removes both when
asked for one. :func:`scan_groups` finds such a period by asking for one channel and raises
the group's ``multiple`` to the number of channels it gets (kept channels then sit at the
same positions in every slice, exactly as for a grouped conv).

Channels that belong to no group are listed as excluded too, with the reason: a conv whose
output is only partly coupled to another group (PyramidNet's shortcut, zero-padded on the
channel axis, joins the first channels of a wider conv) keeps the other channels.

These rules are what torch-pruning's graph tells; :mod:`iaprune.pruning.verify` then checks
every group numerically (a channel shuffle, a module with stored split sizes).

A conv the forward pass never calls (e.g. an auxiliary head used only in training) is
listed as excluded too: it has no channel dependencies to trace.

GroupNorm layers get the same rule (``num_groups`` slices), so each of their groups keeps
the same number of channels; they then normalise over the kept channels only, so unlike
BatchNorm they are not equal to zeroing the removed channels. Depthwise convs
(``groups == in_channels == out_channels``) need none of this: their input and output
channels are pruned together, one for one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
import torch_pruning as tp
from torch import nn

from iaprune.errors import IAPruneError
from iaprune.inference import eval_mode
from iaprune.pruning.channel_group import ChannelGroup, ExcludedGroup
from iaprune.pruning.trace import build_graph

__all__ = [
    "ChannelGroup",
    "ExcludedGroup",
    "build_graph",
    "classifier_convs",
    "dependency_group",
    "require_groups",
    "scan_groups",
]

log = logging.getLogger(__name__)

LOGGED_EXCLUSIONS = 10
"""Excluded groups logged as warnings one by one; the rest are summarised."""


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd) and not module.transposed


def _is_depthwise(module: nn.Module) -> bool:
    return module.groups == module.in_channels == module.out_channels


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
        with torch.no_grad(), eval_mode(model):
            model(example_input)
    finally:
        for h in hooks:
            h.remove()
    if order and _is_conv(order[-1]):
        return [order[-1]]
    return []


def dependency_group(graph: tp.DependencyGraph, conv: nn.Module) -> tp.Group:
    """torch-pruning's group of every layer coupled to all output channels of ``conv``."""
    width = graph.get_out_channels(conv)
    return graph.get_pruning_group(conv, tp.prune_conv_out_channels, list(range(width)))


def scan_groups(
    model: nn.Module, example_input: torch.Tensor, graph: tp.DependencyGraph | None = None
) -> tuple[list[ChannelGroup], list[ExcludedGroup]]:
    """Prunable and excluded channel groups of ``model``, each in module order.

    Linear layers and a final classifier conv are never pruned on their output side and
    are not listed; neither are single-filter convs. Channels of a conv that belong to no
    group are listed as excluded (see the module docstring).
    """
    graph = graph or build_graph(model, example_input)
    names = {m: n for n, m in model.named_modules()}
    order = {n: i for i, n in enumerate(names.values())}
    ignored = {names[m] for m in classifier_convs(model, example_input)}
    groups: list[ChannelGroup] = []
    excluded: list[ExcludedGroup] = []
    seen: set[str] = set()
    covered: dict[str, set[int]] = {}
    for module, name in names.items():
        if not _is_conv(module) or name in ignored or name in seen:
            continue
        if module not in graph.module2node:  # never called: nothing to trace or to gain
            excluded.append(
                ExcludedGroup(name, module.out_channels, (name,), "not used by forward")
            )
            continue
        group = dependency_group(graph, module)
        convs, norms, consumers = _members(group, names)
        _cover(group, names, covered)
        seen.update(convs)
        if set(convs) & ignored or module.out_channels < 2:
            continue
        ordered = tuple(sorted(convs, key=order.__getitem__))
        multiple, reason = _slice_rule(group, names, module.out_channels)
        if not reason:
            multiple, reason = _coupling_rule(graph, module, name, multiple)
        reason = reason or _foreign_state(group, names)
        if reason:
            excluded.append(ExcludedGroup(ordered[0], module.out_channels, ordered, reason))
            continue
        groups.append(
            ChannelGroup(ordered[0], module.out_channels, ordered, norms, consumers, multiple)
        )
    excluded += _uncovered(names, covered, ignored)
    return groups, excluded


def require_groups(
    groups: list[ChannelGroup], excluded: Sequence[ExcludedGroup]
) -> list[ChannelGroup]:
    """``groups``, or an :class:`IAPruneError` when there are none; logs the exclusions.

    The first :data:`LOGGED_EXCLUSIONS` are warnings, the rest INFO lines after a summary.
    """
    for i, item in enumerate(excluded):
        if i == LOGGED_EXCLUSIONS:
            rest = excluded[i:]
            log.warning(
                "%d more channel groups (%d channels) not pruned; -v lists them",
                len(rest),
                sum(e.channels for e in rest),
            )
        level = logging.WARNING if i < LOGGED_EXCLUSIONS else logging.INFO
        log.log(level, "channel group %s", item.note())
    if not groups:
        notes = [e.note() for e in excluded[:3]]
        if len(excluded) > 3:
            notes.append(f"and {len(excluded) - 3} more")
        why = f"; excluded: {'; '.join(notes)}" if excluded else ""
        raise IAPruneError(
            f"the model has no prunable conv layer (need a Conv2d with >= 2 filters){why}"
        )
    return groups


def _slice_rule(group: tp.Group, names: dict[nn.Module, str], channels: int) -> tuple[int, str]:
    """``(multiple, "")`` for a group that can shrink, else ``(1, reason)``.

    Every grouped conv or GroupNorm the group touches must see all ``channels`` channels,
    in order, as its whole input or output; the keep count is then a multiple of its
    number of groups.
    """
    multiple, limiting = 1, ""
    for item in group:
        module = item.dep.target.module
        slices, label = _slices(module, names.get(module, type(module).__name__))
        if slices == 1:
            continue
        if isinstance(module, nn.modules.conv._ConvNd):
            if module.transposed:
                return 1, f"{label} is transposed"
            if module.groups == module.out_channels:
                return 1, (
                    f"{label} has groups == out_channels != in_channels, which torch-pruning "
                    "traces as depthwise"
                )
        out_side = _is_out_pruning(item.dep.handler)
        width = _width(module, out_side)
        if width != channels or [int(i) for i in item.idxs] != list(range(width)):
            side = "output" if out_side else "input"
            return 1, f"{label} gets only part of its {side} channels from this group"
        multiple, limiting = math.lcm(multiple, slices), label
    if multiple >= channels and limiting:
        return 1, f"{limiting} allows no width below all {channels} channels"
    return multiple, ""


def _slices(module: nn.Module, name: str) -> tuple[int, str]:
    """How many independent channel slices ``module`` has (1: none), and its label."""
    if isinstance(module, nn.modules.conv._ConvNd) and (
        module.transposed or not _is_depthwise(module)
    ):
        return module.groups, f"grouped conv {name} (groups={module.groups})"
    if isinstance(module, nn.GroupNorm):
        return module.num_groups, f"GroupNorm {name} (num_groups={module.num_groups})"
    return 1, ""


def _coupling_rule(
    graph: tp.DependencyGraph, root: nn.Module, name: str, multiple: int
) -> tuple[int, str]:
    """``multiple`` raised to the period at which the root's own channels are coupled.

    torch-pruning is asked to remove the first and the last channel alone; when it also
    removes ``c + C/m, c + 2C/m, ...`` (a concat of a conv's output with a copy made from
    it) the group can shrink only by ``m`` channels at a time, at the same positions in
    each of ``m`` slices. Any other pattern excludes the group.
    """
    channels = _width(root, True)
    for probe in (0, channels - 1):
        got = _own_indices(graph, root, probe)
        if got == [probe]:
            continue
        period = len(got)
        chunk = channels // period
        if channels % period or got != [probe % chunk + j * chunk for j in range(period)]:
            return 1, f"removing its filter {probe} makes torch-pruning remove filters {got}"
        multiple = math.lcm(multiple, period)
    if multiple >= channels > 1 and multiple > 1:
        return 1, f"torch-pruning couples all of {name}'s {channels} channels"
    return multiple, ""


def _own_indices(graph: tp.DependencyGraph, root: nn.Module, index: int) -> list[int]:
    """The output channels of ``root`` that torch-pruning removes when asked for ``index``."""
    group = graph.get_pruning_group(root, tp.prune_conv_out_channels, [index])
    got: set[int] = set()
    for item in group:
        if item.dep.target.module is root and _is_out_pruning(item.dep.handler):
            got.update(int(i) for i in item.idxs)
    return sorted(got)


_PRUNED_STATE = frozenset({"weight", "bias", "running_mean", "running_var", "num_batches_tracked"})
"""What torch-pruning's pruners for convs, linears and norms prune (or need not)."""


def _foreign_state(group: tp.Group, names: dict[nn.Module, str]) -> str:
    """A reason when a layer of the group holds channel-sized state torch-pruning ignores.

    Only subclasses defined outside torch are looked at: torch-pruning prunes them as
    their base class (weight and bias), so a tensor of their own (a weight mask, a
    per-channel scale) keeps its size and the pruned model fails or computes otherwise.
    """
    for item in group:
        module = item.dep.target.module
        if module not in names or type(module).__module__.startswith("torch."):
            continue
        sizes = _channel_sizes(module)
        own = list(module.named_parameters(recurse=False)) + list(
            module.named_buffers(recurse=False)
        )
        for attr, tensor in own:
            if attr not in _PRUNED_STATE and sizes & set(tensor.shape):
                return (
                    f"{type(module).__name__} {names[module]} holds {attr!r} of shape "
                    f"{tuple(tensor.shape)}, which torch-pruning does not prune"
                )
    return ""


def _channel_sizes(module: nn.Module) -> set[int]:
    keys = ("out_channels", "in_channels", "num_features", "num_channels", "out_features")
    sizes = {int(getattr(module, k)) for k in keys if isinstance(getattr(module, k, None), int)}
    if isinstance(module, nn.modules.conv._ConvNd):
        sizes.add(module.in_channels // module.groups)
    if isinstance(module, nn.Linear):
        sizes.add(module.in_features)
    return sizes - {1}


def _cover(group: tp.Group, names: dict[nn.Module, str], covered: dict[str, set[int]]) -> None:
    """Record which output channels of which conv ``group`` holds."""
    for item in group:
        module = item.dep.target.module
        if module in names and _is_conv(module) and _is_out_pruning(item.dep.handler):
            covered.setdefault(names[module], set()).update(int(i) for i in item.idxs)


def _uncovered(
    names: dict[nn.Module, str], covered: dict[str, set[int]], ignored: set[str]
) -> list[ExcludedGroup]:
    """Convs some of whose output channels are in no group, with those channels' reason."""
    excluded = []
    for module, name in names.items():
        width = _width(module, True) if _is_conv(module) else 0
        if width < 2 or name in ignored:
            continue
        missing = sorted(set(range(width)) - covered.get(name, set()))
        if not missing or len(missing) == width:
            continue
        excluded.append(
            ExcludedGroup(
                name,
                len(missing),
                (name,),
                f"its channels {_ranges(missing)} join only part of another conv group "
                "(e.g. a shortcut zero-padded on the channel axis), which no width of a "
                "whole group can express",
            )
        )
    return excluded


def _ranges(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` as ``0-2, 5``."""
    parts: list[str] = []
    start = prev = indices[0]
    for i in [*indices[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(parts)


def _width(module: nn.Module, out_side: bool) -> int:
    if isinstance(module, nn.GroupNorm):
        return module.num_channels
    return int(getattr(module, "out_channels" if out_side else "in_channels"))


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
