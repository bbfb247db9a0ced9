"""Cheap evaluation of one candidate: prune, recalibrate BN, optionally a few steps, validate."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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


@dataclass
class _Progress:
    """A candidate part-way through its recovery (:meth:`CandidateEvaluator.continued`)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    steps: int
    rng: dict[str, torch.Tensor]
    cost: CostReport


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
        self._progress: dict[tuple[tuple[str, int], ...], _Progress] = {}
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
        other._progress = {}
        return other

    def measure(self, model: nn.Module, keep: Mapping[str, int] | None) -> CostReport:
        """Costs of ``model`` (kept widths ``keep``; ``None``: the unpruned model)."""
        return self.cost_model.measure(model, self.input_shape, keep)

    def costs(self, keep: Mapping[str, int]) -> tuple[CostReport, dict[str, float]]:
        """Costs and cost ratios of a configuration, without touching data."""
        cost = self.measure(self.pruner.prune(keep), keep)
        return cost, cost.ratio_to(self.baseline)

    def __call__(
        self, keep: Mapping[str, int], *, seed: int | None = None, steps: int | None = None
    ) -> CandidateResult:
        """Prune to ``keep``, adapt, and validate (``seed`` other than the default re-scores).

        ``steps``: recovery steps instead of :attr:`finetune_steps`.
        """
        steps = self.finetune_steps if steps is None else steps
        model = self.pruner.prune(keep)
        cost = self.measure(model, keep)
        other = seed is not None and seed != self.seed
        calibration = self.recalibration if other and self.recalibration else self.calibration
        recalibrate_bn(model, calibration, steps=len(calibration))
        if steps > 0 and self.train_batches:
            seed = self.seed if seed is None else seed
            torch.manual_seed(seed)
            optimizer = self._optimizer(model)
            self._train(model, optimizer, self._order(seed), 0, steps)
            recalibrate_bn(model, calibration, steps=len(calibration))
        accuracy = evaluate(model, self.val_batches, desc="validate")["top1"]
        return CandidateResult(accuracy, cost, cost.ratio_to(self.baseline))

    def continued(self, keep: Mapping[str, int], steps: int) -> CandidateResult:
        """Score ``keep`` after ``steps`` recovery steps, continuing its last recovery.

        The same score as ``self(keep, steps=steps)``: a candidate scored here before keeps
        its model, optimizer and random state, and trains only the missing steps (the
        finalists' successive halving). Call :meth:`forget` to release the models. The
        global random state is left as it was.
        """
        with _own_rng(self.pruner.model, None):
            return self._continued(keep, steps)

    def _continued(self, keep: Mapping[str, int], steps: int) -> CandidateResult:
        key = keep_key(keep)
        state = self._progress.get(key)
        if state is None or state.steps > steps:
            model = self.pruner.prune(keep)
            cost = self.measure(model, keep)
            recalibrate_bn(model, self.calibration, steps=len(self.calibration))
            with _own_rng(model, None) as rng:
                _seed(model, self.seed)
            state = _Progress(model, self._optimizer(model), 0, rng, cost)
        self._progress.pop(key, None)  # kept again only once its recovery has not failed
        if steps > state.steps and self.train_batches:
            with _own_rng(state.model, state.rng) as rng:
                self._train(
                    state.model, state.optimizer, self._order(self.seed), state.steps, steps
                )
            state.rng = rng
        state.steps = steps
        self._progress[key] = state
        scored = copy.deepcopy(state.model)
        if steps > 0 and self.train_batches:
            recalibrate_bn(scored, self.calibration, steps=len(self.calibration))
        accuracy = evaluate(scored, self.val_batches, desc="validate")["top1"]
        return CandidateResult(accuracy, state.cost, state.cost.ratio_to(self.baseline))

    def forget(self, keep: Mapping[str, int] | None = None) -> None:
        """Release the recovery :meth:`continued` kept for ``keep`` (None: for every one)."""
        if keep is None:
            self._progress.clear()
        else:
            self._progress.pop(keep_key(keep), None)

    def _teacher_logits(self) -> list[torch.Tensor]:
        if self._teacher is None:
            teacher = self.pruner.model
            with torch.no_grad(), eval_mode(teacher):
                self._teacher = [teacher(x) for x, _ in self.train_batches]
        return self._teacher

    def _optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.9)

    def _order(self, seed: int) -> list[int]:
        """The training batches' order: as given for the evaluator's seed, else shuffled."""
        if seed == self.seed:
            return list(range(len(self.train_batches)))
        return torch.randperm(
            len(self.train_batches), generator=torch.Generator().manual_seed(seed)
        ).tolist()

    def _train(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        order: list[int],
        start: int,
        stop: int,
    ) -> None:
        """Recovery steps ``start`` to ``stop`` (the batches of ``order`` cycle)."""
        teacher = self._teacher_logits() if self.distill > 0 else None
        model.train()
        for i in islice(cycle(order), start, stop):
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


def _seed(model: nn.Module, seed: int) -> None:
    """Seed the CPU generator and the model's GPU as ``torch.manual_seed`` would, no other."""
    torch.default_generator.manual_seed(seed)
    device = model_device(model)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)


def keep_key(keep: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    """``keep`` as a hashable key: its (group, width) pairs, sorted."""
    return tuple(sorted((name, int(k)) for name, k in keep.items()))


@contextmanager
def _own_rng(
    model: nn.Module, state: dict[str, torch.Tensor] | None
) -> Iterator[dict[str, torch.Tensor]]:
    """Run a block on a candidate's own random state, leaving the global one untouched.

    ``state``: the state to start from (None: the current one); the yielded dict holds the
    state at the end of the block once it exits.
    """
    device = model_device(model)
    cuda = [device.index or 0] if device.type == "cuda" else []
    end: dict[str, torch.Tensor] = {}
    with torch.random.fork_rng(devices=cuda):
        if state is not None:
            torch.random.set_rng_state(state["cpu"])
            if cuda:
                torch.cuda.set_rng_state(state["cuda"], cuda[0])
        yield end
        end["cpu"] = torch.random.get_rng_state()
        if cuda:
            end["cuda"] = torch.cuda.get_rng_state(cuda[0])
