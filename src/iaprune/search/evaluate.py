"""Cheap evaluation of one candidate: prune, recalibrate BN, optionally a few steps, validate."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import cycle, islice

import torch
from torch import nn

from iaprune.cost import CostModel, CostReport
from iaprune.devices import model_device
from iaprune.inference import eval_mode
from iaprune.pruning.surgery import Pruner
from iaprune.train.bn_recalibrate import recalibrate_bn
from iaprune.train.loop import evaluate

Batch = tuple[torch.Tensor, torch.Tensor]


def _to(batches: Sequence[Batch], device: torch.device) -> list[Batch]:
    """Materialise ``batches`` on ``device`` once (every trial reuses them)."""
    return [(x.to(device), y.to(device)) for x, y in batches]


@dataclass(frozen=True)
class CandidateResult:
    """Validation accuracy and costs of one pruned candidate."""

    accuracy: float
    cost: CostReport
    ratios: dict[str, float]


class CandidateEvaluator:
    """Evaluates kept-filter configurations against a fixed baseline.

    ``calibration`` batches re-estimate BatchNorm statistics (adaptive BN); when
    ``finetune_steps`` > 0 the candidate also takes that many SGD steps on
    ``train_batches``, with the loss ``(1 - distill) * CE(labels) + distill * KL(teacher)``
    where the teacher is the unpruned model (knowledge distillation, temperature 1).
    Accuracy is measured on ``val_batches`` only: the search never sees the test split.
    The batches are materialised once so every trial sees the same data, which makes a
    seeded search reproducible; calling with another ``seed`` re-scores a candidate with
    the ``recalibration`` batches for BatchNorm (when given) and the training batches in
    another order, which measures the score's noise.

    Costs come from ``cost_model`` (:class:`~iaprune.cost.CostModel`): called once on the
    unpruned model with ``keep=None`` (:attr:`baseline`), then on every candidate with its
    kept widths, for the per-sample input shape of the pruner's example input.
    """

    def __init__(
        self,
        pruner: Pruner,
        cost_model: CostModel,
        *,
        calibration: Sequence[Batch],
        val_batches: Sequence[Batch],
        recalibration: Sequence[Batch] = (),
        train_batches: Sequence[Batch] = (),
        finetune_steps: int = 0,
        lr: float = 0.01,
        distill: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.pruner = pruner
        self.cost_model = cost_model
        self.input_shape = tuple(int(d) for d in pruner.example_input.shape[1:])
        device = model_device(pruner.model)
        self.calibration = _to(calibration, device)
        self.recalibration = _to(recalibration, device)
        self.val_batches = _to(val_batches, device)
        self.train_batches = _to(train_batches, device)
        self.finetune_steps = finetune_steps
        self.lr = lr
        self.distill = distill
        self.seed = seed
        self._teacher: list[torch.Tensor] | None = None
        self.baseline = self.measure(pruner.model, None)

    @property
    def val_size(self) -> int:
        """Validation images behind an accuracy score."""
        return sum(len(y) for _, y in self.val_batches)

    def variant(
        self, *, finetune_steps: int, distill: float, train_batches: Sequence[Batch]
    ) -> CandidateEvaluator:
        """This evaluator with another recovery (steps, distillation weight, batches).

        Shares the pruner, cost model, baseline costs and calibration/validation batches.
        """
        other = copy.copy(self)
        other.train_batches = _to(train_batches, model_device(self.pruner.model))
        other.finetune_steps = finetune_steps
        other.distill = distill
        other._teacher = None
        return other

    def measure(self, model: nn.Module, keep: Mapping[str, int] | None) -> CostReport:
        """Costs of ``model`` (kept widths ``keep``; ``None``: the unpruned model)."""
        return self.cost_model.measure(model, self.input_shape, keep)

    def costs(self, keep: Mapping[str, int]) -> tuple[CostReport, dict[str, float]]:
        """Costs and cost ratios of a configuration, without touching data."""
        cost = self.measure(self.pruner.prune(keep), keep)
        return cost, cost.ratio_to(self.baseline)

    def __call__(self, keep: Mapping[str, int], *, seed: int | None = None) -> CandidateResult:
        """Prune to ``keep``, adapt, and validate (``seed`` other than the default re-scores)."""
        model = self.pruner.prune(keep)
        cost = self.measure(model, keep)
        other = seed is not None and seed != self.seed
        calibration = self.recalibration if other and self.recalibration else self.calibration
        recalibrate_bn(model, calibration, steps=len(calibration))
        if self.finetune_steps > 0 and self.train_batches:
            self._short_finetune(model, self.seed if seed is None else seed)
            recalibrate_bn(model, calibration, steps=len(calibration))
        accuracy = evaluate(model, self.val_batches, desc="validate")["top1"]
        return CandidateResult(accuracy, cost, cost.ratio_to(self.baseline))

    def _teacher_logits(self) -> list[torch.Tensor]:
        if self._teacher is None:
            teacher = self.pruner.model
            with torch.no_grad(), eval_mode(teacher):
                self._teacher = [teacher(x) for x, _ in self.train_batches]
        return self._teacher

    def _short_finetune(self, model: nn.Module, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        order = torch.randperm(len(self.train_batches), generator=gen).tolist()
        if seed == self.seed:
            order = list(range(len(self.train_batches)))
        teacher = self._teacher_logits() if self.distill > 0 else None
        optimizer = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.9)
        model.train()
        for i in islice(cycle(order), self.finetune_steps):
            x, y = self.train_batches[i]
            optimizer.zero_grad(set_to_none=True)
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            if teacher is not None:
                kd = nn.functional.kl_div(
                    logits.log_softmax(1), teacher[i].softmax(1), reduction="batchmean"
                )
                loss = (1 - self.distill) * loss + self.distill * kd
            loss.backward()
            optimizer.step()
