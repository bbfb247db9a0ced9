"""One batch-1 forward pass with hooks: the tracer every static cost shares.

MACs (:func:`iaprune.cost.count_macs`), activation memory
(:func:`iaprune.cost.peak_activation_bytes`), the latency table's layer sites
(:mod:`iaprune.cost.lut.trace`) and the width-to-cost model of the search
(:class:`iaprune.search.widthcost.WidthCost`) all read the layers' calls of one forward pass
of zeros. :func:`trace_forward` runs it once per use: in eval mode and without gradients, on
the model's device and in its dtype, with every hook removed and every ``training`` flag
restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from iaprune.devices import model_device
from iaprune.inference import eval_mode, model_dtype

LayerHook = Callable[[str, nn.Module, tuple[Any, ...], dict[str, Any], Any], None]
"""Called after each call of a selected module: ``(name, module, args, kwargs, output)``."""


def trace_forward(
    model: nn.Module,
    input_shape: Sequence[int],
    select: Callable[[nn.Module], bool],
    hook: LayerHook,
) -> tuple[torch.Tensor, Any]:
    """Run ``model`` once on zeros shaped ``(1, *input_shape)``, calling ``hook`` per layer call.

    ``select`` picks the modules whose calls are reported (a module called twice is
    reported twice). Returns the input and the model's output.
    """
    names = {m: n for n, m in model.named_modules()}

    def record(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        hook(names[module], module, args, kwargs, out)

    handles = [
        m.register_forward_hook(record, with_kwargs=True) for m in model.modules() if select(m)
    ]
    x = torch.zeros((1, *input_shape), device=model_device(model), dtype=model_dtype(model))
    try:
        with eval_mode(model), torch.no_grad():
            output = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return x, output


def is_leaf(module: nn.Module) -> bool:
    """Whether ``module`` has no child modules."""
    return next(module.children(), None) is None
