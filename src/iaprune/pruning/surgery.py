"""Structural surgery: remove filters for real and return a smaller dense model.

Keep counts and kept indices are checked against each group's rules before any layer is
touched (see :mod:`iaprune.pruning.groups`): a count of zero, above the width or not a
multiple of :attr:`ChannelGroup.multiple`, unknown or excluded groups, and indices that
differ between the slices of a grouped conv raise :class:`IAPruneError`. Only groups that
passed :func:`~iaprune.pruning.verify.verify_groups` are pruned: the :class:`Pruner`
verifies its groups once, :func:`apply_spec` the groups its spec shrinks.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence

import torch
import torch_pruning as tp
from torch import nn

from iaprune.devices import model_device
from iaprune.errors import IAPruneError, one_line
from iaprune.importance import GroupImportance, Importance, create_importance
from iaprune.importance.norms import L1Importance
from iaprune.importance.taylor import accumulate_gradients
from iaprune.pruning.groups import (
    ChannelGroup,
    ExcludedGroup,
    build_graph,
    dependency_group,
    require_groups,
    scan_groups,
)
from iaprune.pruning.spec import PruningSpec
from iaprune.pruning.verify import verify_groups


class Pruner:
    """Scores filters once on the unpruned model, then prunes copies to any spec.

    The original model is never modified. Filter scores are summed over every layer of
    a channel group after normalising each layer's scores by their mean, so a residual
    group keeps the channels that matter to all of its convs; a
    :class:`~iaprune.importance.GroupImportance` scores the group's channels at once.

    ``groups`` are the prunable channel groups (a group's allowed keep counts are the
    multiples of its ``multiple`` up to its width), each verified numerically;
    ``excluded`` the groups and channels left at full width, each with the reason (e.g.
    one branch of a concat feeding a grouped conv, a group reaching a channel shuffle).
    """

    def __init__(
        self,
        model: nn.Module,
        example_input: torch.Tensor,
        *,
        importance: str | Importance = "group_l1",
        calibration: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
        seed: int = 0,
    ) -> None:
        self.model = model
        self.example_input = example_input.to(model_device(model))
        self.importance = (
            create_importance(importance, seed=seed) if isinstance(importance, str) else importance
        )
        graph = build_graph(model, self.example_input)
        groups, excluded = verify_groups(
            model, self.example_input, *scan_groups(model, self.example_input, graph), graph
        )
        self.excluded: list[ExcludedGroup] = excluded
        self.groups: list[ChannelGroup] = require_groups(groups, excluded)
        self.scores = self._score_groups(graph, calibration)

    @property
    def original(self) -> dict[str, int]:
        """Original width of every channel group."""
        return {g.name: g.channels for g in self.groups}

    def spec(self, keep: Mapping[str, int]) -> PruningSpec:
        """Spec keeping the ``keep[group]`` best-scored filters of every group.

        Groups missing from ``keep`` keep every filter. Raises :class:`IAPruneError` for
        an unknown or excluded group and for a keep count the group does not allow.
        """
        _check_names(keep, self.groups, self.excluded)
        full = {g.name: g.check_keep(keep.get(g.name, g.channels)) for g in self.groups}
        indices = {g.name: g.top_indices(self.scores[g.name], full[g.name]) for g in self.groups}
        return PruningSpec(keep=full, original=self.original, kept_indices=indices)

    def prune(self, keep: Mapping[str, int] | PruningSpec) -> nn.Module:
        """Return a pruned deep copy of the model."""
        spec = keep if isinstance(keep, PruningSpec) else self.spec(keep)
        return _pruned_copy(self.model, self.example_input, spec, self.groups, self.excluded)

    def _score_groups(
        self, graph: tp.DependencyGraph, calibration: Sequence[tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        if self.importance.needs_gradients:
            if not calibration:
                raise IAPruneError(f"{type(self.importance).__name__} needs calibration batches")
            accumulate_gradients(self.model, list(calibration))
        modules = dict(self.model.named_modules())
        scores: dict[str, torch.Tensor] = {}
        for group in self.groups:
            total = self._group_score(group, modules, self.importance, graph)
            if total is None:
                warnings.warn(
                    f"{type(self.importance).__name__} gives no score for group {group.name}; "
                    "using L1",
                    stacklevel=2,
                )
                total = self._group_score(group, modules, L1Importance(), graph)
            if total is None:
                raise IAPruneError(f"channel group {group.name} has no conv or norm to score")
            scores[group.name] = total
        if self.importance.needs_gradients:
            self.model.zero_grad(set_to_none=True)
        return scores

    @staticmethod
    def _group_score(
        group: ChannelGroup,
        modules: dict[str, nn.Module],
        importance: Importance,
        graph: tp.DependencyGraph,
    ) -> torch.Tensor | None:
        if isinstance(importance, GroupImportance):
            try:
                raw = [importance.score_group(dependency_group(graph, modules[group.name]))]
            except (IndexError, RuntimeError) as exc:  # torch-pruning's mapping is inconsistent
                raise IAPruneError(
                    f"{type(importance).__name__} cannot score channel group {group.name}: "
                    f"{one_line(exc)}"
                ) from exc
        else:
            raw = [importance.score(modules[name]) for name in group.convs + group.norms]
        total: torch.Tensor | None = None
        for s in raw:
            if s is None or s.numel() != group.channels:
                continue
            s = s.detach().float() / (s.detach().float().mean() + 1e-12)
            total = s if total is None else total + s
        return total


def apply_spec(model: nn.Module, example_input: torch.Tensor, spec: PruningSpec) -> nn.Module:
    """Prune a deep copy of ``model`` to ``spec``.

    Filters listed in ``spec.kept_indices`` survive; groups without indices keep the
    first filters of every slice (:meth:`ChannelGroup.default_indices`, enough to
    rebuild an architecture before loading weights). Every group the spec shrinks is
    verified and everything is validated before the first layer is pruned.
    """
    example_input = example_input.to(model_device(model))
    _check_layers(spec, dict(model.named_modules()))
    graph = build_graph(model, example_input)
    groups, excluded = scan_groups(model, example_input, graph)
    _check_names(spec.keep, groups, excluded)
    shrunk = [g for g in groups if spec.keep.get(g.name, g.channels) < g.channels]
    _, failed = verify_groups(model, example_input, shrunk, (), graph)
    _check_names(spec.keep, groups, [*excluded, *failed])
    return _pruned_copy(model, example_input, spec, groups, excluded)


def _pruned_copy(
    model: nn.Module,
    example_input: torch.Tensor,
    spec: PruningSpec,
    groups: Sequence[ChannelGroup],
    excluded: Sequence[ExcludedGroup],
) -> nn.Module:
    """A deep copy of ``model`` pruned to ``spec``, whose groups are ``groups``."""
    _check_names(spec.keep, groups, excluded)
    by_name = {g.name: g for g in groups}
    removals: dict[str, list[int]] = {}
    for name, keep in spec.keep.items():
        group = by_name[name]
        if group.channels != spec.original[name]:
            raise IAPruneError(
                f"layer {name} has {group.channels} filters, spec expects {spec.original[name]}"
            )
        keep = group.check_keep(keep)
        kept = spec.kept_indices.get(name) or group.default_indices(keep)
        group.check_indices(kept, keep)
        removals[name] = sorted(set(range(group.channels)) - {int(i) for i in kept})
    pruned = copy.deepcopy(model)
    graph = build_graph(pruned, example_input.to(model_device(model)))  # modes kept
    modules = dict(pruned.named_modules())
    for name, removed in removals.items():
        if removed:
            graph.get_pruning_group(modules[name], tp.prune_conv_out_channels, removed).prune()
    return pruned


def _check_layers(spec: PruningSpec, modules: Mapping[str, nn.Module]) -> None:
    """Raise :class:`IAPruneError` when a spec group is no layer or has another width."""
    for name in spec.keep:
        if name not in modules:
            raise IAPruneError(f"spec group {name!r} is not a layer of this model")
        width = getattr(modules[name], "out_channels", None)
        if width != spec.original[name]:
            raise IAPruneError(
                f"layer {name} has {width} filters, spec expects {spec.original[name]}"
            )


def _check_names(
    keep: Mapping[str, int], groups: Sequence[ChannelGroup], excluded: Sequence[ExcludedGroup]
) -> None:
    """Raise :class:`IAPruneError` unless every name in ``keep`` is a prunable group."""
    prunable = [g.name for g in groups]
    why_not = {e.name: e.reason for e in excluded}
    for name in keep:
        if name in why_not:
            raise IAPruneError(f"group {name!r} cannot be pruned: {why_not[name]}")
        if name not in prunable:
            raise IAPruneError(f"unknown channel group {name!r}; valid: {', '.join(prunable)}")
