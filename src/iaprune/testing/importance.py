"""The importance contract: :class:`ImportanceSuite`.

Every criterion registered in :data:`iaprune.importance.IMPORTANCES` must, on a tiny
residual model (after :func:`~iaprune.importance.accumulate_gradients` when it
:attr:`~iaprune.importance.Importance.needs_gradients`):

* give every conv and BatchNorm layer a 1-D, finite, non-negative score per output
  channel, on the weight's device, or ``None`` (a layer it does not score); never score a
  Linear layer;
* score at least one layer of the model (a criterion that scores nothing prunes nothing);
  a :class:`~iaprune.importance.GroupImportance` instead scores every channel group
  (1-D, finite, non-negative, one score per channel) and no layer alone;
* give the same scores when asked twice with the same seed;
* leave the model's parameters, buffers and ``training`` flags alone;
* drive :class:`~iaprune.pruning.Pruner`: a spec at half width keeps exactly the asked
  number of filters per group, at distinct in-range indices.
"""

from __future__ import annotations

import pytest
import torch
import torch_pruning as tp
from torch import nn

from iaprune.importance import (
    IMPORTANCES,
    GroupImportance,
    Importance,
    accumulate_gradients,
    create_importance,
    list_importances,
)
from iaprune.pruning import Pruner
from iaprune.pruning.groups import build_graph, dependency_group, scan_groups
from iaprune.testing._models import assert_unchanged, snapshot, tiny_model

__all__ = ["ImportanceSuite"]

LAYERS = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 1, 16, 16, generator=gen), torch.tensor([0, 1, 2, 3]))]


def _scored(name: str, seed: int = 0) -> tuple[nn.Module, dict[str, torch.Tensor | None]]:
    """A fresh tiny model and ``name``'s score of each of its conv, norm and linear layers.

    For a group criterion: the score of each channel group, keyed by the group's name.
    """
    model = tiny_model().eval()
    importance = create_importance(name, seed=seed)
    if importance.needs_gradients:
        accumulate_gradients(model, _batches())
    if isinstance(importance, GroupImportance):
        return model, _group_scores(model, importance)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, LAYERS)}
    return model, {n: importance.score(m) for n, m in layers.items()}


def _group_deps(model: nn.Module) -> dict[str, tp.Group]:
    """torch-pruning's dependency group of every channel group of ``model`` (all channels)."""
    example = torch.randn(1, 1, 16, 16)
    graph = build_graph(model, example)
    groups, _ = scan_groups(model, example, graph)
    modules = dict(model.named_modules())
    return {g.name: dependency_group(graph, modules[g.name]) for g in groups}


def _group_scores(model: nn.Module, importance: GroupImportance) -> dict[str, torch.Tensor | None]:
    return {name: importance.score_group(deps) for name, deps in _group_deps(model).items()}


class ImportanceSuite:
    """Contract tests run once per registered importance criterion."""

    @pytest.fixture(params=list_importances())
    def name(self, request: pytest.FixtureRequest) -> str:
        """Each registered importance name."""
        return str(request.param)

    def test_registered_class_is_an_importance(self, name: str) -> None:
        assert issubclass(IMPORTANCES.get(name), Importance)
        assert isinstance(create_importance(name), Importance)

    def test_scores_are_per_filter_and_non_negative(self, name: str) -> None:
        model, scores = _scored(name)
        modules = dict(model.named_modules())
        assert any(s is not None for s in scores.values()), f"{name} scores no layer"
        if issubclass(IMPORTANCES.get(name), GroupImportance):
            for layer, module in modules.items():
                assert create_importance(name).score(module) is None, layer
            for group, score in scores.items():  # keyed by the group's first conv
                assert score is not None, group
                assert score.shape == (modules[group].out_channels,), group
                assert torch.isfinite(score).all() and (score >= 0).all(), group
            return
        for layer, score in scores.items():
            module = modules[layer]
            if isinstance(module, nn.Linear):
                assert score is None, f"{name} scored Linear {layer}"
                continue
            if score is None:
                continue
            width = module.out_channels if isinstance(module, nn.Conv2d) else module.num_features
            assert score.shape == (width,), layer
            assert score.device == module.get_parameter("weight").device
            assert torch.isfinite(score).all() and (score >= 0).all(), layer

    def test_same_seed_same_scores(self, name: str) -> None:
        _, first = _scored(name, seed=3)
        _, second = _scored(name, seed=3)
        for layer, score in first.items():
            other = second[layer]
            assert (score is None) == (other is None), layer
            if score is not None and other is not None:
                assert torch.equal(score, other), layer

    def test_scoring_leaves_the_model_alone(self, name: str) -> None:
        model = tiny_model()
        importance = create_importance(name)
        if importance.needs_gradients:
            accumulate_gradients(model, _batches())
        deps = _group_deps(model) if isinstance(importance, GroupImportance) else {}
        before = snapshot(model)
        for module in model.modules():
            importance.score(module)
        for group in deps.values():
            assert isinstance(importance, GroupImportance)
            importance.score_group(group)
        assert_unchanged(model, before)

    def test_drives_the_pruner(self, name: str) -> None:
        model = tiny_model().eval()
        pruner = Pruner(model, torch.randn(1, 1, 16, 16), importance=name, calibration=_batches())
        keep = {g.name: max(1, g.channels // 2) for g in pruner.groups}
        spec = pruner.spec(keep)
        for group in pruner.groups:
            kept = spec.kept_indices[group.name]
            assert len(kept) == keep[group.name] == len(set(kept)), group.name
            assert all(0 <= i < group.channels for i in kept), group.name
