"""Every channel group is checked numerically before use: a wrong result must be impossible.

torch-pruning follows channels through the operations it knows. A few it cannot follow
give a pruned model that is silently wrong or fails in its forward: a channel shuffle
written as view/transpose/view, a module with channel-sized state of its own (stored
split sizes). :func:`verify_groups` therefore prunes each group once, on a copy, and
compares:

* the copy is the model in float64 on the CPU (float32 on its device if it cannot run
  there), in eval mode, with random weights (so a channel that trained weights happen to
  silence still counts; its own weights if random ones give non-finite outputs);
* about half of each group's filters are removed, at random positions its ``multiple``
  allows;
* the pruned copy's output must equal, up to float64 rounding, the unpruned copy's output
  when every consumer of the group (each conv and linear that reads its channels) ignores
  the removed channels (they are zeroed at its input); GroupNorm and LayerNorm, whose
  statistics span channels, normalise over the kept ones. Every group conv must have the
  kept width.

The reference reads the removed channels' positions at each consumer from torch-pruning's
graph, but the data reach each consumer along the model's real path in both models: when
torch-pruning maps a channel to the wrong position (a shuffle), the consumer reads other
channels than in the reference and the outputs differ.

All groups are pruned together first (one extra trace, prune and two forwards); only when
that fails is each group checked alone, and the failing ones are excluded with the reason:
torch-pruning's error, the layer left at another width, the layer where the pruned model
raises, or the first conv or linear whose output differs.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from iaprune.errors import IAPruneError, one_line
from iaprune.pruning.groups import (
    ChannelGroup,
    ExcludedGroup,
    build_graph,
    require_groups,
    scan_groups,
)

RTOL = 1e-7
"""Allowed difference relative to the output's largest magnitude (float64 rounding)."""

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)
_CROSS_CHANNEL = (nn.GroupNorm, nn.LayerNorm)
_CONSUMERS = (nn.modules.conv._ConvNd, nn.Linear)


def find_groups(
    model: nn.Module, example_input: torch.Tensor, graph: tp.DependencyGraph | None = None
) -> list[ChannelGroup]:
    """Prunable, verified channel groups of ``model`` in module order.

    Raises :class:`IAPruneError` when the model has no prunable conv.
    """
    graph = graph or build_graph(model, example_input)
    groups, excluded = scan_groups(model, example_input, graph)
    return require_groups(*verify_groups(model, example_input, groups, excluded, graph))


def verify_groups(
    model: nn.Module,
    example_input: torch.Tensor,
    groups: Sequence[ChannelGroup],
    excluded: Sequence[ExcludedGroup] = (),
    graph: tp.DependencyGraph | None = None,
    *,
    seed: int = 0,
) -> tuple[list[ChannelGroup], list[ExcludedGroup]]:
    """``groups`` that prune correctly, and ``excluded`` plus the others with the reason."""
    checkable = [g for g in groups if g.channels // g.multiple >= 2]
    if not checkable:
        return list(groups), list(excluded)
    graph = graph or build_graph(model, example_input)
    probe = _Probe(model, example_input, graph, checkable, seed)
    failed: dict[str, str] = {}
    if probe.check(checkable):
        for group in checkable:
            reason = probe.check([group])
            if reason:
                failed[group.name] = reason
        rest = [g for g in checkable if g.name not in failed]
        if rest and probe.check(rest):
            for group in rest:
                failed[group.name] = "pruned together with the other groups, the output changes"
    kept = [g for g in groups if g.name not in failed]
    dropped = [
        ExcludedGroup(g.name, g.channels, g.convs, failed[g.name])
        for g in groups
        if g.name in failed
    ]
    return kept, [*excluded, *dropped]


@dataclass
class _Removal:
    """What removing some channels of groups takes away, as torch-pruning maps it.

    ``outputs``: removed output channels of each conv (for the width check) and of each
    GroupNorm/LayerNorm (renormalised in the reference); ``inputs``: the input channels
    each consumer ignores in the reference.
    """

    outputs: dict[str, set[int]] = field(default_factory=dict)
    inputs: dict[str, set[int]] = field(default_factory=dict)

    def add(self, group: tp.Group, names: dict[nn.Module, str]) -> None:
        for item in group:
            module = item.dep.target.module
            if module not in names:
                continue
            out_side = getattr(item.dep.handler, "__name__", "") == "prune_out_channels"
            idxs = {int(i) for i in item.idxs}
            if out_side and isinstance(module, (nn.modules.conv._ConvNd, *_CROSS_CHANNEL)):
                self.outputs.setdefault(names[module], set()).update(idxs)
            elif not out_side and isinstance(module, _CONSUMERS):
                self.inputs.setdefault(names[module], set()).update(idxs)

    def merged(self, other: _Removal) -> _Removal:
        both = _Removal()
        for mine, theirs, into in (
            (self.outputs, other.outputs, both.outputs),
            (self.inputs, other.inputs, both.inputs),
        ):
            for name in mine.keys() | theirs.keys():
                into[name] = mine.get(name, set()) | theirs.get(name, set())
        return both


class _Probe:
    """The float64 copy, its input and the channels each group removes in the check."""

    def __init__(
        self,
        model: nn.Module,
        example_input: torch.Tensor,
        graph: tp.DependencyGraph,
        groups: Sequence[ChannelGroup],
        seed: int,
    ) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.model, self.x, self.rtol = _reference(model, example_input, gen)
        self.removed = {g.name: _removal(g, gen) for g in groups}
        modules = dict(model.named_modules())
        names = {m: n for n, m in modules.items()}
        self.effects: dict[str, _Removal] = {}
        for g in groups:
            self.effects[g.name] = _Removal()
            root = modules[g.name]
            group = graph.get_pruning_group(root, tp.prune_conv_out_channels, self.removed[g.name])
            self.effects[g.name].add(group, names)

    def check(self, groups: Sequence[ChannelGroup]) -> str:
        """Why pruning ``groups`` together is wrong, or ``""`` when it is right."""
        pruned = copy.deepcopy(self.model)
        try:
            graph = build_graph(pruned, self.x)
            modules = dict(pruned.named_modules())
            for g in groups:
                root, removed = modules[g.name], self.removed[g.name]
                graph.get_pruning_group(root, tp.prune_conv_out_channels, removed).prune()
        except Exception as exc:  # torch-pruning raises anything when its mapping is wrong
            return f"torch-pruning fails to remove its filters: {one_line(exc, 200)}"
        effect = _Removal()
        for g in groups:
            effect = effect.merged(self.effects[g.name])
        return self._width_error(groups, effect, pruned) or self._output_error(pruned, effect)

    def _width_error(
        self, groups: Sequence[ChannelGroup], effect: _Removal, pruned: nn.Module
    ) -> str:
        """Every group conv loses the channels torch-pruning says; the root exactly ``keep``."""
        before = dict(self.model.named_modules())
        after = dict(pruned.named_modules())
        for g in groups:
            keep = g.channels - len(self.removed[g.name])
            for name in g.convs:
                want = before[name].out_channels - len(effect.outputs.get(name, ()))
                width = after[name].out_channels
                if width != (keep if name == g.name else want) or width == 0:
                    return (
                        f"asked to keep {keep} of its {g.channels} filters, torch-pruning "
                        f"leaves {name} with {width}"
                    )
        return ""

    def _output_error(self, pruned: nn.Module, effect: _Removal) -> str:
        with torch.no_grad(), _ignoring(self.model, effect):
            expected = self.model(self.x)
        try:
            with torch.no_grad(), _where(pruned) as stack:
                got = pruned(self.x)
        except Exception as exc:  # the pruned model may raise anything
            place = f" in {stack[-1]}" if stack else ""
            return f"pruned, the model fails{place}: {one_line(exc, 200)}"
        if _close(got, expected, self.rtol):
            return ""
        layer = _first_difference(self.model, pruned, self.x, effect, self.rtol)
        return (
            f"pruned, {layer} computes otherwise than the original that ignores the removed "
            "channels: torch-pruning does not follow these channels into it (e.g. through a "
            "channel shuffle or a reshape)"
        )


def _reference(
    model: nn.Module, example_input: torch.Tensor, gen: torch.Generator
) -> tuple[nn.Module, torch.Tensor, float]:
    """The copy to check on: float64 on the CPU, else float32 where the model is (a model
    that cannot run on the CPU); random weights, else the model's own where random ones give
    non-finite outputs. The tolerance suits the precision."""
    device = example_input.device
    settings = [(torch.device("cpu"), torch.float64, RTOL), (device, torch.float32, 1e-4)]
    for (where, dtype, rtol), randomize in itertools.product(settings, (True, False)):
        try:
            ref = copy.deepcopy(model).to(device=where, dtype=dtype).eval()
            if randomize:
                _randomize(ref, gen)
            x = torch.randn(tuple(example_input.shape), generator=gen, dtype=dtype).to(where)
            with torch.no_grad():
                out = ref(x)
        except Exception:  # noqa: S112 - a model that cannot run in this setting: try the next
            continue
        if _finite(out):
            return ref, x, rtol
    raise IAPruneError(
        "cannot check the pruned model: a copy of the model in float64 on the CPU or in "
        f"float32 on {device} fails or gives non-finite outputs"
    )


@torch.no_grad()
def _randomize(model: nn.Module, gen: torch.Generator) -> None:
    """Random conv, linear and norm weights (and norm statistics), scaled to keep O(1)."""

    def fill(t: torch.Tensor | None, make: Callable[[torch.Tensor], torch.Tensor]) -> None:
        if t is not None and t.is_floating_point():
            t.copy_(make(torch.empty(t.shape, dtype=t.dtype)))

    def normal(std: float) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda t: t.normal_(0.0, std, generator=gen)

    def uniform(t: torch.Tensor) -> torch.Tensor:
        return t.uniform_(0.5, 1.5, generator=gen)

    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd | nn.Linear):
            fill(m.weight, normal(1 / math.sqrt(max(1, m.weight[0].numel()))))
            fill(m.bias, normal(0.1))
        elif isinstance(m, _NORMS | nn.GroupNorm | nn.LayerNorm):
            fill(getattr(m, "weight", None), uniform)
            fill(getattr(m, "bias", None), normal(0.1))
            fill(getattr(m, "running_mean", None), normal(0.1))
            fill(getattr(m, "running_var", None), uniform)


def _removal(group: ChannelGroup, gen: torch.Generator) -> list[int]:
    """About half the group's filters, at the same random positions in every slice."""
    chunk = group.channels // group.multiple
    positions = torch.randperm(chunk, generator=gen)[: chunk // 2].tolist()
    return sorted(j * chunk + p for j in range(group.multiple) for p in positions)


@contextmanager
def _ignoring(model: nn.Module, effect: _Removal) -> Iterator[None]:
    """Consumers read zeros at the removed channels; cross-channel norms skip them."""
    hooks = []
    for name, module in model.named_modules():
        if name in effect.inputs:
            hooks.append(module.register_forward_pre_hook(_blind(module, effect.inputs[name])))
        if name in effect.outputs and isinstance(module, _CROSS_CHANNEL):
            idxs = sorted(effect.outputs[name])
            hooks.append(
                module.register_forward_hook(
                    lambda mod, inputs, out, idxs=idxs: _renormalised(mod, inputs[0], out, idxs)
                )
            )
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


def _blind(module: nn.Module, idxs: set[int]) -> Callable[..., tuple[Any, ...]]:
    """A pre-hook zeroing input channels ``idxs`` (features last for a linear layer)."""
    index = sorted(idxs)

    def hook(_m: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
        x = inputs[0].clone()
        if isinstance(module, nn.Linear):
            x[..., index] = 0
        else:
            x[:, index] = 0
        return (x, *inputs[1:])

    return hook


def _renormalised(
    mod: nn.Module, x: torch.Tensor, out: torch.Tensor, idxs: list[int]
) -> torch.Tensor:
    """GroupNorm/LayerNorm's output with the kept channels normalised over themselves."""
    fn = nn.functional
    out = out.clone()
    if isinstance(mod, nn.GroupNorm):
        kept = [i for i in range(x.shape[1]) if i not in set(idxs)]
        w, b = _affine(mod, kept, 0)
        out[:, kept] = fn.group_norm(x[:, kept], mod.num_groups, w, b, mod.eps)
        return out
    assert isinstance(mod, nn.LayerNorm)
    kept = [i for i in range(x.shape[-1]) if i not in set(idxs)]
    shape = (*mod.normalized_shape[:-1], len(kept))
    w, b = _affine(mod, kept, -1)
    out[..., kept] = fn.layer_norm(x[..., kept], shape, w, b, mod.eps)
    return out


def _affine(
    mod: nn.Module, kept: list[int], dim: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    def pick(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.index_select(dim, torch.tensor(kept))

    return pick(getattr(mod, "weight", None)), pick(getattr(mod, "bias", None))


@contextmanager
def _where(model: nn.Module) -> Iterator[list[str]]:
    """The modules running, innermost last, as ``name (Type)``; left as is when one raises."""
    stack: list[str] = []

    def push(mod: nn.Module, _i: Any) -> None:
        stack.append(f"{names[mod]} ({type(mod).__name__})")

    def pop(_m: nn.Module, _i: Any, _o: Any) -> None:
        stack.pop()

    names = {m: n for n, m in model.named_modules() if n}
    hooks = [
        h for m in names for h in (m.register_forward_pre_hook(push), m.register_forward_hook(pop))
    ]
    try:
        yield stack
    finally:
        for h in hooks:
            h.remove()


def _first_difference(
    ref: nn.Module, pruned: nn.Module, x: torch.Tensor, effect: _Removal, rtol: float
) -> str:
    """The first conv or linear (in execution order) whose pruned output differs."""
    want = _outputs(ref, x, effect)
    got = _outputs(pruned, x, _Removal())
    for name, r in want.items():
        p = got.get(name)
        if p is None:
            continue
        removed = effect.outputs.get(name, set())
        if r.shape != p.shape and removed and r.dim() >= 2:
            r = r[:, [i for i in range(r.shape[1]) if i not in removed]]
        if r.shape != p.shape or not _close(p, r, rtol):
            return name
    return "the model's output"


def _outputs(model: nn.Module, x: torch.Tensor, effect: _Removal) -> dict[str, torch.Tensor]:
    """Each conv's and linear's first output in ``model(x)``, in execution order."""
    seen: dict[str, torch.Tensor] = {}
    names = {m: n for n, m in model.named_modules()}

    def record(mod: nn.Module, _i: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            seen.setdefault(names[mod], out)

    layers = [m for m in model.modules() if isinstance(m, _CONSUMERS)]
    hooks = [m.register_forward_hook(record) for m in layers]
    try:
        with torch.no_grad(), _ignoring(model, effect):
            model(x)
    except Exception:  # noqa: S110 - what ran before the error is enough
        pass
    finally:
        for h in hooks:
            h.remove()
    return seen


def _close(got: Any, expected: Any, rtol: float) -> bool:
    a, b = _tensors(got), _tensors(expected)
    if len(a) != len(b) or any(p.shape != q.shape for p, q in zip(a, b, strict=True)):
        return False
    scale = max((float(q.abs().max()) for q in b if q.numel()), default=0.0)
    return all(
        float((p - q).abs().max()) <= rtol * max(scale, 1e-30)
        for p, q in zip(a, b, strict=True)
        if p.numel()
    )


def _finite(out: Any) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in _tensors(out))


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out.detach()]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, list | tuple):
        return [t for o in out for t in _tensors(o)]
    return []
