"""A run directory with its data, model recipe and unpruned model: :class:`Session`.

The session holds what every stage of a run needs and runs one stage at a time
(:mod:`iaprune.pipeline` chains them). Every input is checked before any training, so a
bad value fails in seconds and is never saved in config.json. Each stage's artefact is
written only when the stage is complete (:mod:`iaprune.artefacts`); training in progress
lives in ``*.partial.pt`` and ``--resume`` continues it, refusing a changed definition of
the run (:data:`iaprune.flags.SAFE_CHANGES`). The search assembles itself
(:class:`iaprune.search.plan.SearchSetup`) from the settings and batches handed over.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from iaprune import artefacts
from iaprune.artefacts import finished_baseline
from iaprune.checks import load_checkpoint, start_config
from iaprune.config import RunConfig
from iaprune.cost import CostModel
from iaprune.cost.latency import default_round_to
from iaprune.data.file_index import INDEX_FILE
from iaprune.devices import resolve_device
from iaprune.errors import IAPruneError, one_line
from iaprune.inputs import RunInputs
from iaprune.model_source import ModelRecipe, stored_recipe
from iaprune.parallel import check_joinable, local_workers, run_definition
from iaprune.pruning import Pruner, PruningSpec, apply_spec
from iaprune.resume import describe_changes
from iaprune.rundir import RUN_MARKER, RunDir
from iaprune.search import CandidateEvaluator, SearchResult
from iaprune.search.choice import LazyScorer
from iaprune.search.plan import (
    ScoringData,
    SearchPlan,
    SearchSetup,
    check_budget,
    check_search_inputs,
)
from iaprune.train import TrainHistory, distributed, evaluate, finetune
from iaprune.train.checkpoint import load_into

if TYPE_CHECKING:
    from iaprune.cost.lut import LatencyTable

log = logging.getLogger(__name__)


class Session:
    """A run directory with its inputs (:class:`~iaprune.inputs.RunInputs`), stage by stage.

    Models train on ``config.device``; under torchrun (``dist``) data-parallel, and only
    rank 0 writes. ``recipe``, ``trust_code``, ``own_model`` and ``data_index``: as in
    :class:`~iaprune.inputs.RunInputs`. ``table_writable`` False: a missing or stale
    latency table at ``config.cost.table`` is an error, not rebuilt (a path read from a
    run directory); ``table_keeps_step`` True (a resumed run): a stored table on another
    channel step is kept.
    """

    def __init__(
        self,
        run: RunDir | None,
        config: RunConfig,
        *,
        recipe: ModelRecipe | None = None,
        trust_code: bool = False,
        own_model: bool = True,
        table_writable: bool = True,
        table_keeps_step: bool = False,
        data_index: Path | None = None,
    ) -> None:
        self._run = run
        self.config = config
        self.trust_code = trust_code
        self.table_writable = table_writable
        self.table_keeps_step = table_keeps_step
        self.checked_budgets: tuple[str, ...] = ()  # timed A/B by validate, not re-timed
        self.dist, self.device = distributed.init(resolve_device(config.device))
        self.inputs = RunInputs(
            config,
            recipe=recipe,
            trust_code=trust_code,
            own_model=own_model,
            data_index=data_index or (run.root / INDEX_FILE if run is not None else None),
        )
        self.bundle, self.loaders = self.inputs.bundle, self.inputs.loaders
        self.input_shape, self.example_input = self.inputs.input_shape, self.inputs.example_input

    @property
    def run(self) -> RunDir:
        """The run directory (set once every input has been checked)."""
        if self._run is None:
            raise RuntimeError("the run directory is not prepared yet")
        return self._run

    @property
    def recipe(self) -> ModelRecipe:
        """How the unpruned model is built (:attr:`iaprune.inputs.RunInputs.recipe`)."""
        return self.inputs.recipe

    def build_model(self) -> nn.Module:
        """A fresh unpruned model (user factories' exceptions become one-line errors)."""
        return self.inputs.build_model()

    @classmethod
    def create(
        cls,
        run_dir: str | Path,
        config: RunConfig,
        *,
        resume: bool = False,
        overwrite: bool = False,
        trust_code: bool = False,
        explicit: Collection[str] | None = None,
    ) -> Session:
        """Check every input, then start a run (or reopen one with ``resume``).

        ``explicit`` names the fields the user set (None: all of them); on resume the
        saved config wins except for those safe changes, and stored outputs not named
        again are used read-only (:func:`iaprune.checks.start_config`). A pickled model
        file, or a resumed run's factory, needs ``trust_code``. A new run is made
        self-contained (:meth:`iaprune.inputs.RunInputs.adopt`); a failed start leaves an
        overwritten run as it was (:meth:`RunDir.starting`). The run stays locked by this
        process until :func:`iaprune.rundir.release_locks`.
        """
        if resume and overwrite:
            raise IAPruneError("--resume and --overwrite exclude each other")
        root = Path(run_dir)
        ctx, _ = distributed.init(resolve_device(config.device))
        if not ctx.main:  # rank 0 checks the inputs and prepares the run directory
            distributed.barrier(ctx)
            return cls.open(root, trust_code=trust_code)
        config, saved, unconfirmed = start_config(root, config, resume=resume, explicit=explicit)
        recipe = None
        if saved is not None and (root / "model.json").is_file():
            recipe = stored_recipe(RunDir(root), trust_code)
        session = cls(
            None,
            config,
            recipe=recipe,
            trust_code=trust_code,
            own_model=saved is None or explicit is None or "model" in explicit,
            data_index=root / INDEX_FILE if saved is not None else None,
            table_writable="cost.table" not in unconfirmed,
            table_keeps_step=saved is not None,
        )
        session.validate(root, resume=resume)
        if saved is not None and saved != config:
            log.info("resuming with %s", describe_changes(saved, config))
        try:
            run = RunDir.prepare(root, resume=resume, overwrite=overwrite)
            with run.starting():
                session._run = run
                if saved is None:  # a new run is made self-contained
                    session.config = session.inputs.adopt(run, session.config)
                run.write_json_if_changed("model.json", session.inputs.recipe.to_dict())
                run.write_json_if_changed(RUN_MARKER, session.config.stored())  # started
                session.inputs.save_index(run)
        except OSError as exc:
            raise IAPruneError(f"cannot write run directory {root}: {one_line(exc)}") from exc
        distributed.barrier(ctx)
        return session

    @classmethod
    def open(cls, run_dir: str | Path, *, trust_code: bool = False, lock: bool = False) -> Session:
        """Reopen a finished or partial run (a factory or file model needs ``trust_code``);
        ``lock``: hold its lock to write it (under torchrun: rank 0, the one that writes)."""
        run = RunDir.existing(run_dir, lock=lock and distributed.from_env().main)
        config = RunConfig.from_dict(run.read_json("config.json"))
        recipe = stored_recipe(run, trust_code)
        return cls(run, config, recipe=recipe, trust_code=trust_code, table_keeps_step=True)

    # -- checks before any work -------------------------------------------------------
    def validate(self, root: Path, *, resume: bool) -> None:
        """Everything that can fail before training: names, storage, model, budget."""
        cfg, study = self.config, root / "study.db"
        own_study = resume and (study.is_file() or study.is_symlink())
        check_search_inputs(
            cfg, cfg.search.storage or (RunDir(root).storage if own_study else None), resume=resume
        )
        model = self.inputs.check_model(root, resume=resume, checkpoint=cfg.checkpoint)
        self.checked_budgets = check_budget(self.pruner(model), cfg.search, cfg.cost, self.round_to)

    # -- stages ----------------------------------------------------------------------
    def baseline_done(self) -> dict[str, Any] | None:
        """The finished baseline.pt (None when absent or written by an interrupted run)."""
        return finished_baseline(self.run.root)

    def finished_baseline_model(self) -> nn.Module:
        """The unpruned model of a finished baseline (the copy of --checkpoint); never trains."""
        done = self.baseline_done()
        if done is not None:
            model = load_into(self.build_model(), done, self.run / "baseline.pt")
            return model.to(self.device)
        if self.config.checkpoint:  # runs from before --checkpoint was copied in
            model = load_checkpoint(self.build_model(), self.config.checkpoint)
            return model.to(self.device)
        raise IAPruneError(f"the baseline of {self.run.root} is not finished; use --resume")

    def baseline(self) -> nn.Module:
        """The trained unpruned model: from --checkpoint, a finished baseline.pt, or trained now.

        Training saves its state in ``baseline.partial.pt`` after every epoch and writes
        ``baseline.pt`` only at the end, so an interrupted baseline is never taken as done.
        """
        if self.config.checkpoint or self.baseline_done() is not None:
            return self.finished_baseline_model()
        model = self.build_model().to(self.device)
        cfg = replace(
            self.config.finetune, epochs=self.config.baseline_epochs, lr=self.config.baseline_lr
        )
        log.info("stage baseline: training %s for %d epochs", self.config.model, cfg.epochs)
        partial = self.run / "baseline.partial.pt"
        history = finetune(
            model,
            self.train_loader(),
            self.loaders["val"],
            cfg,
            checkpoint=partial,
            desc="baseline",
            dist=self.dist,
        )
        if self.dist.main:
            artefacts.save_baseline(self.run, model, epochs=cfg.epochs, history=history.epochs)
        return model

    def train_loader(self, seed: int | None = None) -> DataLoader[Any]:
        """Training batches for baseline and fine-tuning (this process's shard under torchrun).

        The order is a permutation per epoch seeded with ``seed`` (default: the run seed);
        the data split stays the run seed's.
        """
        seed = self.config.seed if seed is None else seed
        return distributed.train_loader(self.loaders["train"], self.dist, seed=seed)

    # -- search (assembled by iaprune.search.plan) -----------------------------------
    @property
    def scoring(self) -> ScoringData:
        """This run's loaders and seed, from which the search draws its batches."""
        per_batch = 4 * self.example_input[0].numel() * self.config.finetune.batch_size
        return ScoringData(self.loaders, self.config.seed, per_batch)

    @property
    def setup(self) -> SearchSetup:
        """This run's search settings and data (the latency table's home once prepared)."""
        table = None if self._run is None else self._run / "latency_table.json"
        c = self.config
        return SearchSetup(
            c.search,
            c.cost,
            self.scoring,
            self.example_input,
            self.round_to,
            table,
            self.table_writable,
            self.table_keeps_step,
        )

    @property
    def round_to(self) -> int:
        """Channel multiple: --round-to, else the latency backend's preferred multiple."""
        if self.config.search.round_to is not None:
            return self.config.search.round_to
        return default_round_to(self.config.cost.backend)

    def batches(self, split: str, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``n`` batches of a split, materialised (:meth:`ScoringData.batches`)."""
        return self.scoring.batches(split, n)

    def pruner(self, model: nn.Module) -> Pruner:
        """Channel groups and filter scores of the unpruned ``model``."""
        return self.setup.pruner(model)

    def latency_table(self, model: nn.Module, pruner: Pruner) -> LatencyTable:
        """The run's latency table of ``model`` (``pruner``'s): reused when valid, else built."""
        return self.setup.latency_table(pruner)

    def trial_cost(self, model: nn.Module, pruner: Pruner) -> CostModel:
        """Cost model of the search candidates of ``model`` (``pruner``'s)."""
        return self.setup.trial_cost(pruner)

    def evaluator(
        self, model: nn.Module, pruner: Pruner, cost: CostModel | None = None
    ) -> CandidateEvaluator:
        """The trial evaluator (``cost`` prices the candidates; default :meth:`trial_cost`)."""
        return self.setup.evaluator(pruner, cost)

    def final_evaluator(self, trial: CandidateEvaluator) -> LazyScorer | None:
        """The finalists' scorer (:func:`iaprune.search.plan.final_evaluator`)."""
        return self.setup.final_evaluator(trial)

    def plan(self, model: nn.Module) -> SearchPlan:
        """The search of the unpruned ``model``; a non-finite baseline output is refused."""
        self.inputs.check_forward(model, weights="the baseline")
        setup = self.setup
        return setup.plan(setup.pruner(model))

    def search_done(self) -> SearchResult | None:
        """The finished search (None when absent or when more trials are asked for)."""
        if not (self.run / "search.json").is_file():
            return None
        result = SearchResult.load(self.run)
        return result if result.trials + result.failed >= self.config.search.trials else None

    def search(self, model: nn.Module, *, resume: bool = False) -> SearchResult | None:
        """Run or resume the search; writes search.json and spec.json.

        With ``search.workers`` > 1, that many processes run trials (this one and
        ``workers - 1`` ``iaprune worker`` processes). When the study already exists in
        a shared storage (the same command started on another machine first), this
        process joins it as a worker and returns None: the creator writes the result.
        """
        cfg = self.config.search
        log.info("stage search: %d trials, sampler %s", cfg.trials, cfg.sampler)
        plan = self.plan(model)
        cuda = self.config.device in ("cuda", "auto") and self.device.type == "cuda"
        workers = local_workers(
            self.run.root,
            cfg.workers - 1,
            trust_code=self.trust_code,
            cuda=cuda,
            storage=cfg.storage,
        )
        result = plan.run(
            storage=cfg.storage or self.run.storage,
            resume=resume,
            definition=run_definition(self.config, model),
            workers=workers,
            checked=self.checked_budgets,
        )
        if result is not None:
            result.save(self.run)
        return result

    def join(self, model: nn.Module, *, timeout: float = 600.0) -> int:
        """Run trials of this run's study as one more worker; returns how many ran here.

        Waits up to ``timeout`` s for the study to be created and set up.
        """
        check_joinable(self.run.root, self.config.search.storage)
        storage = self.config.search.storage or self.run.storage
        definition = run_definition(self.config, model)
        return self.plan(model).join(storage=storage, definition=definition, timeout=timeout)

    def prune_and_finetune(self, model: nn.Module, spec: PruningSpec) -> tuple[nn.Module, dict]:
        """Apply ``spec``, fine-tune on train (select on val); writes pruned.pt when done.

        The global torch RNG is seeded with the run seed first: equal specs fine-tune
        equally. pruned.pt is written by :func:`iaprune.artefacts.save_pruned`.
        """
        log.info("stage finetune: %d epochs", self.config.finetune.epochs)
        pruned = apply_spec(model, self.example_input, spec)
        partial = self.run / "pruned.partial.pt"
        record = artefacts.finetune_record(spec, self.config.finetune)
        history = self.finetune(pruned, checkpoint=partial, tag={"keep": record["keep"]})
        if self.dist.main:
            artefacts.save_pruned(self.run, pruned, spec, record, history)
        return pruned, {"epochs": history.epochs}

    def finetune(
        self,
        pruned: nn.Module,
        *,
        seed: int | None = None,
        checkpoint: Path | None = None,
        tag: dict[str, Any] | None = None,
    ) -> TrainHistory:
        """Fine-tune ``pruned`` in place on train (select on val) with the run's settings.

        ``seed`` (default: the run seed) seeds the global torch RNG, which augmentation
        draws from, and the training data order, so the fine-tune depends on the seed and
        the architecture only, not on how much randomness the search used (a resumed run
        whose search was skipped fine-tunes like an uninterrupted one). ``checkpoint`` and
        ``tag`` are :func:`iaprune.train.finetune`'s resumable partial state.
        """
        seed = self.config.seed if seed is None else seed
        torch.manual_seed(seed)
        return finetune(
            pruned,
            self.train_loader(seed),
            self.loaders["val"],
            self.config.finetune,
            checkpoint=checkpoint,
            tag=tag,
            dist=self.dist,
        )

    def load_pruned(self) -> nn.Module:
        """Rebuild the pruned model from model.json and pruned.pt's spec, then load it."""
        spec = artefacts.pruned_spec(self.run, checkpoint=self.config.checkpoint)
        shape_only = PruningSpec(keep=spec.keep, original=spec.original)
        model = apply_spec(self.build_model(), self.example_input, shape_only)
        return load_checkpoint(model, self.run / "pruned.pt").to(self.device)

    def test(self, model: nn.Module) -> dict[str, float]:
        """Accuracy on the held-out test split (used once per final model)."""
        return evaluate(model, self.loaders["test"], desc="test")
