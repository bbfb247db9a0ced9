"""Tracing a model with torch-pruning's DependencyGraph, with one-line errors naming the layer."""

from __future__ import annotations

import torch
import torch_pruning as tp
from torch import nn

from iaprune.errors import IAPruneError, one_line
from iaprune.inference import eval_mode


def build_graph(model: nn.Module, example_input: torch.Tensor) -> tp.DependencyGraph:
    """Trace ``model`` once; raises a one-line error naming the layer when tracing fails.

    Modules are traced out of place (``inplace=False`` for the time of the trace): with
    torch 2.13 an in-place ReLU right after a conv can hide the conv from torch-pruning's
    trace (NiN: none of its convs was found).
    """
    inplace = [m for m in model.modules() if getattr(m, "inplace", None) is True]
    for m in inplace:
        setattr(m, "inplace", False)  # noqa: B010 - a plain attribute nn.Module types as a tensor
    try:
        with eval_mode(model):
            return tp.DependencyGraph().build_dependency(model, example_input, verbose=False)
    except Exception as exc:  # torch-pruning raises many kinds of errors when tracing fails
        where = _failing_node(exc, {m: n for n, m in model.named_modules()})
        raise IAPruneError(
            f"could not trace the model's channel dependencies{where}: {one_line(exc)}"
        ) from exc
    finally:
        for m in inplace:
            setattr(m, "inplace", True)  # noqa: B010


def _failing_node(exc: BaseException, names: dict[nn.Module, str]) -> str:
    """`` at <layer>`` for the graph node torch-pruning was working on when it raised."""
    tb, node = exc.__traceback__, None
    while tb is not None:  # innermost frame last: its first node (usually its argument) wins
        nodes = [v for v in tb.tb_frame.f_locals.values() if isinstance(v, tp.dependency.Node)]
        node = nodes[0] if nodes else node
        tb = tb.tb_next
    if node is None:
        return ""
    if node.module in names:
        return f" at {names[node.module]} ({type(node.module).__name__})"
    op = type(node.grad_fn).__name__ if node.grad_fn is not None else type(node.module).__name__
    return f" at the {op.removesuffix('Backward0')} op after {_producer(node, names)}"


def _producer(node: tp.dependency.Node, names: dict[nn.Module, str]) -> str:
    """The nearest named layer feeding ``node`` (breadth first), or ``the input``."""
    queue, seen = list(node.inputs), set()
    while queue:
        item = queue.pop(0)
        if id(item) in seen:
            continue
        seen.add(id(item))
        if item.module in names:
            return names[item.module]
        queue.extend(item.inputs)
    return "the input"
