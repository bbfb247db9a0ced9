"""The tiny seeded candidate evaluator the search tests share."""

from __future__ import annotations

import torch

from iaprune.cost import StaticCostModel
from iaprune.models import create_model
from iaprune.pruning import Pruner
from iaprune.search import CandidateEvaluator


def tiny_evaluator(
    model: str = "test_resnet", *, seed: int = 0, finetune_steps: int = 0
) -> CandidateEvaluator:
    """A 1-channel 8x8 ``model`` with 4 classes scored on 3 seeded random batches.

    Two batches calibrate BatchNorm (and train, with ``finetune_steps`` > 0), one validates.
    """
    torch.manual_seed(seed)
    net = create_model(model, num_classes=4, in_channels=1).eval()
    gen = torch.Generator().manual_seed(seed)
    batches = [
        (torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 4, (16,), generator=gen))
        for _ in range(3)
    ]
    return CandidateEvaluator(
        Pruner(net, batches[0][0][:1]),
        StaticCostModel(),
        calibration=batches[:2],
        val_batches=batches[2:],
        train_batches=batches[:2] if finetune_steps else (),
        finetune_steps=finetune_steps,
    )
