"""Structural surgery: remove filters for real and return a smaller dense model."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence

import torch
import torch_pruning as tp
from torch import nn

from iaprune.errors import IAPruneError
from iaprune.importance import Importance, create_importance
from iaprune.importance.norms import L1Importance
from iaprune.importance.taylor import accumulate_gradients
from iaprune.pruning.groups import ChannelGroup, build_graph, find_groups
from iaprune.pruning.spec import PruningSpec


class Pruner:
    """Scores filters once on the unpruned model, then prunes copies to any spec.

    The original model is never modified. Filter scores are summed over every layer of
    a channel group after normalising each layer's scores by their mean, so a residual
    group keeps the channels that matter to all of its convs.
    """

    def __init__(
        self,
        model: nn.Module,
        example_input: torch.Tensor,
        *,
        importance: str | Importance = "l1",
        calibration: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
        seed: int = 0,
    ) -> None:
        self.model = model
        self.example_input = example_input.to(_device(model))
        self.importance = (
            create_importance(importance, seed=seed) if isinstance(importance, str) else importance
        )
        graph = build_graph(model, example_input)
        self.groups: list[ChannelGroup] = find_groups(model, example_input, graph)
        self.scores = self._score_groups(graph, calibration)

    @property
    def original(self) -> dict[str, int]:
        """Original width of every channel group."""
        return {g.name: g.channels for g in self.groups}

    def spec(self, keep: Mapping[str, int]) -> PruningSpec:
        """Spec keeping the ``keep[group]`` best-scored filters of every group."""
        indices = {}
        for group in self.groups:
            k = int(keep.get(group.name, group.channels))
            top = torch.topk(self.scores[group.name], k).indices
            indices[group.name] = sorted(top.tolist())
        full = {g.name: int(keep.get(g.name, g.channels)) for g in self.groups}
        return PruningSpec(keep=full, original=self.original, kept_indices=indices)

    def prune(self, keep: Mapping[str, int] | PruningSpec) -> nn.Module:
        """Return a pruned deep copy of the model."""
        spec = keep if isinstance(keep, PruningSpec) else self.spec(keep)
        return apply_spec(self.model, self.example_input, spec)

    def _score_groups(
        self, graph: tp.DependencyGraph, calibration: Sequence[tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        if self.importance.needs_gradients:
            if not calibration:
                raise IAPruneError(f"{type(self.importance).__name__} needs calibration batches")
            accumulate_gradients(self.model, list(calibration))
        modules = dict(self.model.named_modules())
        scores = {}
        for group in self.groups:
            total = self._group_score(group, modules, self.importance)
            if total is None:
                warnings.warn(
                    f"{type(self.importance).__name__} gives no score for group {group.name}; "
                    "using L1",
                    stacklevel=2,
                )
                total = self._group_score(group, modules, L1Importance())
            scores[group.name] = total
        if self.importance.needs_gradients:
            self.model.zero_grad(set_to_none=True)
        return scores

    @staticmethod
    def _group_score(
        group: ChannelGroup, modules: dict[str, nn.Module], importance: Importance
    ) -> torch.Tensor | None:
        total: torch.Tensor | None = None
        for name in group.convs + group.norms:
            s = importance.score(modules[name])
            if s is None or s.numel() != group.channels:
                continue
            s = s.detach().float() / (s.detach().float().mean() + 1e-12)
            total = s if total is None else total + s
        return total


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def apply_spec(model: nn.Module, example_input: torch.Tensor, spec: PruningSpec) -> nn.Module:
    """Prune a deep copy of ``model`` to ``spec``.

    Filters listed in ``spec.kept_indices`` survive; groups without indices keep their
    first ``keep`` filters (enough to rebuild an architecture before loading weights).
    """
    pruned = copy.deepcopy(model)
    was_training = pruned.training
    graph = build_graph(pruned, example_input.to(_device(model)))
    modules = dict(pruned.named_modules())
    for name, keep in spec.keep.items():
        if name not in modules:
            raise IAPruneError(f"spec group {name!r} is not a layer of this model")
        conv = modules[name]
        if conv.out_channels != spec.original[name]:
            raise IAPruneError(
                f"layer {name} has {conv.out_channels} filters, spec expects {spec.original[name]}"
            )
        kept = spec.kept_indices.get(name) or list(range(keep))
        if len(kept) != keep:
            raise IAPruneError(f"group {name!r}: {len(kept)} kept indices for keep={keep}")
        removed = sorted(set(range(conv.out_channels)) - set(kept))
        if removed:
            graph.get_pruning_group(conv, tp.prune_conv_out_channels, removed).prune()
    pruned.train(was_training)
    return pruned
