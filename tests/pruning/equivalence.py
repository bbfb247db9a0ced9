"""The proof of surgery: a pruned model equals the original whose consumers ignore the removed
channels (the channels are zeroed at the input of every conv and linear that reads them).

The positions a consumer reads the removed channels at come from torch-pruning's graph,
but the data take the model's real path in both models: a wrong mapping (a channel
shuffle) makes the consumer read other channels than in the reference, and the outputs
differ. Unlike zeroing a conv's output this also holds where a removed channel keeps
influencing others without a consumer in between (a recurrent state, a sigmoid gate).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch_pruning as tp
from torch import nn
from torch.utils.hooks import RemovableHandle

from iaprune.pruning import Pruner, PruningSpec
from iaprune.pruning.groups import build_graph


def ignoring_hooks(
    model: nn.Module, example: torch.Tensor, pruner: Pruner, spec: PruningSpec
) -> list[RemovableHandle]:
    """Pre-hooks that zero, at every consumer's input, the channels ``spec`` removes."""
    graph = build_graph(model, example)
    modules = dict(model.named_modules())
    names = {m: n for n, m in modules.items()}
    blind: dict[str, set[int]] = {}
    for group in pruner.groups:
        removed = sorted(set(range(group.channels)) - set(spec.kept_indices[group.name]))
        if not removed:
            continue
        root = modules[group.name]
        for item in graph.get_pruning_group(root, tp.prune_conv_out_channels, removed):
            module = item.dep.target.module
            reads = getattr(item.dep.handler, "__name__", "") == "prune_in_channels"
            if reads and module in names and isinstance(module, nn.Conv2d | nn.Linear):
                blind.setdefault(names[module], set()).update(int(i) for i in item.idxs)
    return [
        modules[name].register_forward_pre_hook(_zero_inputs(modules[name], sorted(idxs)))
        for name, idxs in blind.items()
    ]


def _zero_inputs(module: nn.Module, idxs: list[int]) -> Callable[..., tuple[Any, ...]]:
    def hook(_m: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
        x = inputs[0].clone()
        if isinstance(module, nn.Linear):
            x[..., idxs] = 0
        else:
            x[:, idxs] = 0
        return (x, *inputs[1:])

    return hook


def random_keep(pruner: Pruner, seed: int) -> dict[str, int]:
    """A random allowed keep count per group (a multiple of the group's ``multiple``)."""
    gen = torch.Generator().manual_seed(seed)
    keep = {}
    for g in pruner.groups:
        slots = int(torch.randint(1, g.channels // g.multiple + 1, (1,), generator=gen))
        keep[g.name] = g.multiple * slots
    return keep


def assert_equivalent(
    model: nn.Module,
    x: torch.Tensor,
    seed: int = 0,
    keep: dict[str, int] | None = None,
    importance: str = "l1",
    pruner: Pruner | None = None,
) -> PruningSpec:
    """Prune to ``keep`` (random allowed counts by default) and compare with the reference.

    In float64 the output may differ by 1e-10 of its largest magnitude, else by 1e-5.
    """
    model.eval()
    pruner = pruner or Pruner(model, x[:1], importance=importance)
    spec = pruner.spec(random_keep(pruner, seed) if keep is None else keep)
    pruned = pruner.prune(spec).eval()
    hooks = ignoring_hooks(model, x[:1], pruner, spec)
    try:
        with torch.no_grad():
            expected = model(x)
    finally:
        for h in hooks:
            h.remove()
    with torch.no_grad():
        got = pruned(x)
    if x.dtype == torch.float64:
        tol = 1e-10 * max(1.0, float(expected.abs().max()))
        torch.testing.assert_close(got, expected, atol=tol, rtol=0)
    else:
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # The model really shrank: every group conv of the group's width has the kept width.
    before, after = dict(model.named_modules()), dict(pruned.named_modules())
    for group in pruner.groups:
        for conv in group.convs:
            if before[conv].out_channels == group.channels:
                assert after[conv].out_channels == spec.keep[group.name], conv
    assert all(p.numel() > 0 for p in pruned.parameters())
    return spec
