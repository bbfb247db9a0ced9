"""A run's search, assembled from plain inputs: :class:`SearchSetup`, :class:`SearchPlan`.

The caller (:class:`iaprune.session.Session`) hands over the run's settings and batches
(:class:`SearchSetup`, :class:`ScoringData`); the setup makes the pruner of the unpruned
model and the candidates' cost model (:func:`trial_cost`), and the plan builds the
search space, the trial evaluator, the finalists' scorer and the warm starts, runs or
joins the study and, with a projected latency budget, measures the chosen widths
(:meth:`SearchPlan.run`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from iaprune.config import CostConfig, RunConfig, SearchConfig
from iaprune.cost import CostModel, StaticCostModel, create_cost_model
from iaprune.cost.latency import default_round_to, get_backend
from iaprune.cost.lut.policy import run_table, search_cost
from iaprune.parallel import run_definition
from iaprune.pruning import Pruner
from iaprune.search.builder import Space, WarmStart, make_space, warm_starts, width_space
from iaprune.search.choice import LazyScorer
from iaprune.search.evaluate import CandidateEvaluator
from iaprune.search.latency_fit import (
    LATENCY_BUDGETS,
    ab_measure,
    check_latency_floor,
    fit_measured,
    latency_key,
)
from iaprune.search.projection import AllocationSpace, latency_predictors
from iaprune.search.records import SearchResult
from iaprune.search.samplers import create_sampler
from iaprune.search.storage import open_storage
from iaprune.search.study import StudyExistsError, join_search, run_search
from iaprune.search.uniform import check_reachable, describe_smallest
from iaprune.search.workers import check_storage
from iaprune.timing import TimingSettings

if TYPE_CHECKING:
    from iaprune.cost.lut import LatencyTable

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]

TRAIN_BATCH_BYTES = 1 << 30
"""At most this many bytes of distinct training batches per evaluator (steps cycle over them)."""


@dataclass(frozen=True)
class ScoringData:
    """The run's loaders by split, its seed and the bytes of one training batch's inputs."""

    loaders: Mapping[str, DataLoader[Any]]
    seed: int
    batch_bytes: int

    def batches(self, split: str, n: int) -> list[Batch]:
        """The first ``n`` batches of a split, materialised (same data for every trial).

        The train split's order and augmentation are drawn from generators seeded with
        the run seed at every call, so every call (the filter scores' calibration, the
        trials' and the finalists' recovery steps) and a resumed run see the same
        sequence, whatever ran before.
        """
        loader = self.loaders[split]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            if loader.generator is not None:
                loader.generator.manual_seed(self.seed)
            return list(islice(iter(loader), n))

    def train_batches(self, steps: int) -> list[Batch]:
        """Training batches for ``steps`` recovery steps (about 1 GiB at most; steps cycle)."""
        return self.batches("train", min(steps, max(1, TRAIN_BATCH_BYTES // self.batch_bytes)))


def projects_latency(config: SearchConfig) -> bool:
    """Whether search candidates are projected onto a latency budget (with the table).

    So they are with the constrained objective, the ``budget`` space and
    ``--max-latency`` or ``--max-latency-ms``, whatever ``--latency`` says: every
    candidate is then priced by the latency table, and the chosen one is measured.
    """
    budgets = config.objective.budgets()
    latency = "latency" in budgets or "latency_ms" in budgets
    return latency and config.space == "budget" and config.objective.kind == "constrained"


def trial_cost(
    pruner: Pruner,
    input_shape: Sequence[int],
    search: SearchConfig,
    cost: CostConfig,
    *,
    table_fallback: Path,
    table_writable: bool,
    round_to: int | None = None,
    keep_step: bool = False,
) -> CostModel:
    """Cost model of the search candidates: latency measured, predicted, or none.

    A predicted latency comes from the run's latency table
    (:func:`iaprune.cost.lut.policy.run_table`, ``table_fallback`` and ``table_writable``
    as there, its channel step the run's ``round_to``, ``keep_step`` on resume), priced or not as
    :func:`iaprune.cost.lut.policy.search_cost` decides.
    """
    if not search.objective.needs_latency:
        return create_cost_model("static")
    projected = projects_latency(search)
    if cost.latency == "measured" and not projected:
        return create_cost_model("measured", cost)
    table = run_table(
        pruner.model,
        input_shape,
        pruner.groups,
        cost,
        fallback=table_fallback,
        writable=table_writable,
        multiple=round_to,
        keep_step=keep_step,
    )
    return search_cost(table, cost, projected=projected)


def check_search_inputs(config: RunConfig, storage: str | None, *, resume: bool) -> None:
    """The sampler and latency backend names and, when given, the study's ``storage``."""
    create_sampler(config.search.sampler, seed=config.search.seed)
    get_backend(config.cost.backend)
    if storage:
        name = config.search.study_name
        check_storage(storage, name, resume=resume, definition=run_definition(config))


def check_budget(
    pruner: Pruner, search: SearchConfig, cost: CostConfig, round_to: int
) -> tuple[str, ...]:
    """Prunable groups exist and the smallest allowed model meets every budget.

    MACs, parameters and memory are counted; a latency budget is checked by timing the
    smallest allowed model A/B against the unpruned one (no latency table is built for
    this check) and refused only when the interval is over it
    (:func:`iaprune.search.latency_fit.check_latency_floor`). Also warns when a latency
    objective is searched on widths off the backend's channel multiple
    (:func:`warn_off_multiple`). Returns the budgets timed A/B, for
    :meth:`SearchPlan.run`'s ``checked``.
    """
    warn_off_multiple(search, cost, round_to)
    space = width_space(pruner, search, round_to=round_to)
    evaluator = CandidateEvaluator(pruner, StaticCostModel(), calibration=[], val_batches=[])
    check_reachable(evaluator, space, search, skip=LATENCY_BUDGETS)
    budgets = search.objective.budgets()
    timed = tuple(key for key in LATENCY_BUDGETS if key in budgets)
    if timed:
        check_latency_floor(pruner, space.smallest(), budgets, cost, describe_smallest(space))
    return timed


def warn_off_multiple(search: SearchConfig, cost: CostConfig, round_to: int) -> None:
    """Warn when latency is predicted for widths off the backend's channel multiple.

    Between two multiples of its vector width a runtime is not linear: on ONNX Runtime
    (resnet56 x0.375, batch 32) 16 of 24 channels in the last stage cost 0.31 of the
    model, 18 cost 0.45 and 24 cost 0.48. A latency table interpolates between its grid
    points, so it can be off between them; the chosen model is measured, and
    re-projected when it misses a latency budget.
    """
    preferred = default_round_to(cost.backend)
    predicted = cost.latency == "predicted" or projects_latency(search)
    if search.objective.needs_latency and predicted and round_to % preferred:
        log.warning(
            "--round-to %d keeps widths that are not multiples of %d, %s's channel "
            "multiple: such widths can cost about as much as the next multiple, and the "
            "latency table interpolates between its grid points; the chosen model is measured",
            round_to,
            preferred,
            cost.backend,
        )


def make_evaluator(
    pruner: Pruner, cost: CostModel, data: ScoringData, config: SearchConfig
) -> CandidateEvaluator:
    """The trial evaluator of ``config`` (batches on the model's device), pricing by ``cost``."""
    return CandidateEvaluator(
        pruner,
        cost,
        calibration=data.batches("train_eval", config.bn_batches),
        recalibration=data.batches("train_eval", 2 * config.bn_batches)[config.bn_batches :],
        val_batches=data.batches("val", config.val_batches or 10**9),
        train_batches=data.train_batches(config.finetune_steps),
        finetune_steps=config.finetune_steps,
        distill=config.distill,
        seed=config.seed,
    )


def final_evaluator(
    trial: CandidateEvaluator, data: ScoringData, config: SearchConfig
) -> LazyScorer | None:
    """The finalists' scorer: ``final_steps`` recovery steps with ``final_distill``
    (continued to the steps of ``final_rungs``).

    Built on first use from ``trial`` (same calibration and validation batches, same
    baseline costs). None when the trial scores serve: ``final_steps`` is 0, no
    finalists are re-scored, or the final settings equal the trial's (and there are no
    later rungs).
    """
    same = (config.final_steps, config.final_distill) == (config.finetune_steps, config.distill)
    if config.final_steps == 0 or not config.rescore or (same and not config.rungs()):
        return None
    return LazyScorer(partial(_final_variant, trial, data, config))


def _final_variant(
    trial: CandidateEvaluator, data: ScoringData, config: SearchConfig
) -> CandidateEvaluator:
    return trial.variant(
        finetune_steps=config.final_steps,
        distill=config.final_distill,
        train_batches=data.train_batches(
            max([config.final_steps, *(s for s, _ in config.rungs())])
        ),
    )


@dataclass(frozen=True)
class SearchSetup:
    """A run's search settings and data, from which its search assembles itself.

    ``table_fallback`` is where the run keeps its latency table (None: no run directory
    yet) and ``table_writable`` whether a missing or stale table may be built there;
    ``table_keeps_step``: a resumed run keeps a stored table on another channel step.
    """

    search: SearchConfig
    cost: CostConfig
    scoring: ScoringData
    example_input: torch.Tensor
    round_to: int
    table_fallback: Path | None
    table_writable: bool
    table_keeps_step: bool = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The per-sample input shape."""
        return tuple(int(d) for d in self.example_input.shape[1:])

    def pruner(self, model: torch.nn.Module) -> Pruner:
        """Channel groups and filter scores of the unpruned ``model``."""
        return Pruner(
            model,
            self.example_input,
            importance=self.search.importance,
            calibration=self.scoring.batches("train", 4),
            seed=self.search.seed,
        )

    def _table_path(self) -> Path:
        if self.table_fallback is None:
            raise RuntimeError("the run directory is not prepared yet")
        return self.table_fallback

    def latency_table(self, pruner: Pruner) -> LatencyTable:
        """The run's latency table of ``pruner``'s model: reused when valid, else built."""
        path, writable = self._table_path(), self.table_writable
        shape, groups = self.input_shape, pruner.groups
        return run_table(
            pruner.model,
            shape,
            groups,
            self.cost,
            fallback=path,
            writable=writable,
            multiple=self.round_to,
            keep_step=self.table_keeps_step,
        )

    def trial_cost(self, pruner: Pruner) -> CostModel:
        """Cost model of the search candidates (:func:`trial_cost`)."""
        path, writable = self._table_path(), self.table_writable
        shape = self.input_shape
        return trial_cost(
            pruner,
            shape,
            self.search,
            self.cost,
            table_fallback=path,
            table_writable=writable,
            round_to=self.round_to,
            keep_step=self.table_keeps_step,
        )

    def evaluator(self, pruner: Pruner, cost: CostModel | None = None) -> CandidateEvaluator:
        """The trial evaluator; ``cost`` prices the candidates (default: :meth:`trial_cost`)."""
        return make_evaluator(pruner, cost or self.trial_cost(pruner), self.scoring, self.search)

    def final_evaluator(self, trial: CandidateEvaluator) -> LazyScorer | None:
        """The finalists' scorer (:func:`final_evaluator`)."""
        return final_evaluator(trial, self.scoring, self.search)

    def plan(self, pruner: Pruner) -> SearchPlan:
        """The search over ``pruner``'s groups with these settings."""
        return SearchPlan.build(
            pruner,
            self.trial_cost(pruner),
            self.scoring,
            self.search,
            input_shape=self.input_shape,
            round_to=self.round_to,
            timing=self.cost.timing,
        )


@dataclass
class SearchPlan:
    """The parts of a run's search: space, trial evaluator and finalists' scorer.

    ``timing`` times the chosen widths against a projected latency budget.
    """

    pruner: Pruner
    space: Space
    evaluator: CandidateEvaluator
    final_evaluator: LazyScorer | None
    config: SearchConfig
    input_shape: tuple[int, ...]
    timing: TimingSettings

    @classmethod
    def build(
        cls,
        pruner: Pruner,
        cost: CostModel,
        data: ScoringData,
        config: SearchConfig,
        *,
        input_shape: Sequence[int],
        round_to: int,
        timing: TimingSettings,
    ) -> SearchPlan:
        """The plan of ``config`` over ``pruner``'s groups, candidates priced by ``cost``.

        With a latency budget the space projects onto the latency table's predictions.
        """
        table = getattr(cost, "table", None) if projects_latency(config) else None
        predictors = latency_predictors(table) if table is not None else None
        space = make_space(pruner, input_shape, config, round_to=round_to, predictors=predictors)
        evaluator = make_evaluator(pruner, cost, data, config)
        final = final_evaluator(evaluator, data, config)
        return cls(pruner, space, evaluator, final, config, tuple(input_shape), timing)

    def warm_starts(self) -> dict[str, WarmStart]:
        """The heuristics' allocations (:func:`iaprune.search.warm_starts`)."""
        return warm_starts(self.pruner, self.space)

    def run(
        self,
        *,
        storage: str,
        resume: bool = False,
        definition: Mapping[str, Any] | None = None,
        workers: AbstractContextManager[Any] | None = None,
        checked: Collection[str] = (),
    ) -> SearchResult | None:
        """Run or resume the study in ``storage``; the result, latency-checked.

        ``workers`` runs alongside the study (the run's local worker processes). When
        the study already exists in a shared storage (the same command started on
        another machine first), this process joins it as a worker and returns None.
        ``checked``: budgets already checked by :func:`check_budget` (see
        :func:`iaprune.search.run_search`).
        """
        if self.config.workers > 1:  # the local workers find the storage (see join)
            open_storage(storage, heartbeat=self.config.heartbeat)
        try:
            with workers or nullcontext():
                result = run_search(
                    self.evaluator,
                    self.space,
                    self.config,
                    storage=storage,
                    resume=resume,
                    warm_starts=self.warm_starts,
                    definition=definition,
                    final_evaluator=self.final_evaluator,
                    checked=checked,
                )
        except StudyExistsError:
            ran = self.join(storage=storage, definition=definition)
            log.info("joined study %r as a worker: ran %d trials", self.config.study_name, ran)
            return None
        self.fit_latency(result)
        return result

    def join(
        self,
        *,
        storage: str,
        definition: Mapping[str, Any] | None = None,
        timeout: float = 600.0,
    ) -> int:
        """Run trials of the study another process created; how many ran here.

        Waits up to ``timeout`` s for the study to be created and set up.
        """
        return join_search(
            self.evaluator,
            self.space,
            self.config,
            storage=storage,
            definition=definition,
            timeout=timeout,
        )

    def fit_latency(self, result: SearchResult) -> None:
        """Measure the chosen widths against a projected latency budget; re-project if over.

        Sets ``result.latency_fit`` and, when the widths change, ``result.spec``.
        """
        if not isinstance(self.space, AllocationSpace):
            return
        key = latency_key(self.space.projection)
        if key is None:
            return
        measure = ab_measure(self.pruner, self.input_shape, self.timing, key)
        fit = fit_measured(result.spec.keep, self.space.projection, key, measure)
        result.latency_fit = fit.to_dict()
        if fit.final.keep != result.spec.keep:
            result.spec = self.pruner.spec(fit.final.keep)
