"""The end-to-end pipeline: baseline -> search -> prune best -> fine-tune -> test -> report.

Each stage leaves its artefact in the run directory and is skipped on ``--resume`` when
that artefact exists, so an interrupted run loses no finished work.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch import nn

from iaprune.config import CostConfig, FinetuneConfig, ObjectiveConfig, SearchConfig
from iaprune.cost import CostReport, measure_cost
from iaprune.cost.latency import default_round_to
from iaprune.data import DataBundle, create_dataset, make_loaders
from iaprune.errors import IAPruneError
from iaprune.model_source import ModelRecipe, resolve_model
from iaprune.pruning import Pruner, PruningSpec, apply_spec
from iaprune.rundir import RunDir
from iaprune.search import CandidateEvaluator, SearchResult, make_space, run_search, warm_starts
from iaprune.search.evaluate import CostFunction
from iaprune.train import evaluate, finetune, load_weights, save_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run; saved as ``config.json``."""

    model: str = "vgg16"
    dataset: str = "digits"
    data_root: str | None = None
    download: bool = False
    width_mult: float = 0.25
    checkpoint: str | None = None
    baseline_epochs: int = 30
    baseline_lr: float = 0.05
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "cpu"
    search: SearchConfig = field(default_factory=SearchConfig)
    finetune: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(epochs=10))
    cost: CostConfig = field(default_factory=CostConfig)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`."""
        data = dict(data)
        search = dict(data.pop("search"))
        search["objective"] = ObjectiveConfig(**search["objective"])
        finetune_cfg = FinetuneConfig(**data.pop("finetune"))
        cost = CostConfig(**data.pop("cost"))
        return cls(**data, search=SearchConfig(**search), finetune=finetune_cfg, cost=cost)


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (a GPU when one is visible)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise IAPruneError(f"unknown device {name!r}; valid: cpu, cuda, cuda:N, auto") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise IAPruneError(f"device {name!r} requested but no CUDA GPU is visible")
    return device


class Session:
    """A run directory with its data, model recipe and unpruned model loaded."""

    def __init__(
        self,
        run: RunDir,
        config: RunConfig,
        *,
        recipe: ModelRecipe | None = None,
        trust_code: bool = False,
    ) -> None:
        self.run = run
        self.config = config
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        self.bundle: DataBundle = create_dataset(
            config.dataset,
            root=config.data_root,
            val_fraction=config.val_fraction,
            seed=config.seed,
            **({"download": True} if config.download else {}),
        )
        self.loaders = make_loaders(self.bundle, config.finetune.batch_size, seed=config.seed)
        self.recipe = recipe or resolve_model(
            config.model,
            num_classes=self.bundle.num_classes,
            in_channels=self.bundle.in_channels,
            width_mult=config.width_mult,
            trust_code=trust_code,
        )
        self.input_shape = (self.bundle.in_channels, *self.bundle.input_size)
        self.example_input = torch.randn(
            1, *self.input_shape, generator=torch.Generator().manual_seed(config.seed)
        )

    @classmethod
    def create(
        cls,
        run_dir: str | Path,
        config: RunConfig,
        *,
        resume: bool = False,
        overwrite: bool = False,
        trust_code: bool = False,
    ) -> Session:
        """Start a run (or reopen one with ``resume``, whose saved config then wins).

        A factory named in ``config`` for a new run runs; a pickled model file, or a
        resumed run's factory, needs ``trust_code`` (see :mod:`iaprune.model_source`).
        A failed start leaves an overwritten run as it was (:meth:`RunDir.starting`).
        """
        run = RunDir.prepare(run_dir, resume=resume, overwrite=overwrite)
        with run.starting():
            recipe = None
            if resume and (run / "config.json").is_file():
                saved = RunConfig.from_dict(run.read_json("config.json"))
                config = replace(saved, search=replace(saved.search, trials=config.search.trials))
                recipe = _stored_recipe(run, trust_code)
            session = cls(run, config, recipe=recipe, trust_code=trust_code)
            if recipe is None:
                session.adopt_inputs()
            run.write_json("config.json", session.config.to_dict())
            run.write_json("model.json", session.recipe.to_dict())
        return session

    @classmethod
    def open(cls, run_dir: str | Path, *, trust_code: bool = False) -> Session:
        """Reopen a finished or partial run (a factory or file model needs ``trust_code``)."""
        run = RunDir.existing(run_dir)
        config = RunConfig.from_dict(run.read_json("config.json"))
        return cls(run, config, recipe=_stored_recipe(run, trust_code))

    def adopt_inputs(self) -> None:
        """Make a new run self-contained: copy --checkpoint and a model file in, paths absolute.

        The checkpoint is checked against the model first, so a wrong file fails the start.
        """
        c = self.config
        if c.checkpoint:
            load_weights(self.recipe.build(), c.checkpoint)
            self.run.copy_in(c.checkpoint, "baseline.pt")
        if self.recipe.kind == "file":
            self.run.copy_in(self.recipe.path, "model.pt")
            self.recipe = replace(self.recipe, target="model.pt", base=self.run.root)
        self.config = replace(
            c,
            checkpoint=_absolute(c.checkpoint),
            data_root=_absolute(c.data_root),
            cost=replace(c.cost, table=_absolute(c.cost.table)),
        )

    # -- costs ------------------------------------------------------------------------
    def measure(self, model: nn.Module, *, latency: bool) -> CostReport:
        """Costs of ``model`` on this run's input shape and latency settings."""
        c = self.config.cost
        return measure_cost(
            model,
            self.input_shape,
            latency=latency,
            backend=c.backend,
            batch_size=c.batch_size,
            threads=c.threads,
            warmup=c.warmup,
            repeats=c.repeats,
        )

    # -- stages ----------------------------------------------------------------------
    def baseline(self) -> nn.Module:
        """The trained unpruned model: from --checkpoint, from baseline.pt, or trained now."""
        model = self.recipe.build()
        path = self.run / "baseline.pt"
        if path.is_file():  # also the copy of --checkpoint
            return load_weights(model, path).to(self.device)
        if self.config.checkpoint:  # runs from before --checkpoint was copied in
            return load_weights(model, self.config.checkpoint).to(self.device)
        model.to(self.device)
        cfg = replace(
            self.config.finetune, epochs=self.config.baseline_epochs, lr=self.config.baseline_lr
        )
        log.info("training the baseline for %d epochs", cfg.epochs)
        finetune(
            model, self.loaders["train"], self.loaders["val"], cfg, checkpoint=path, desc="baseline"
        )
        save_atomic({"state_dict": model.state_dict()}, path)
        return model

    def trial_cost(self, model: nn.Module, pruner: Pruner) -> CostFunction:
        """Cost of a search candidate: latency measured, predicted from a table, or none."""
        if not self.config.search.objective.needs_latency:
            return lambda m, _keep: self.measure(m, latency=False)
        c = self.config.cost
        if c.latency == "measured":
            return lambda m, _keep: self.measure(m, latency=True)
        from iaprune.cost.lut import load_or_build, predicted_cost

        table = load_or_build(
            c.table or self.run / "latency_table.json",
            model,
            self.input_shape,
            pruner.groups,
            backend=c.backend,
            batch_size=c.batch_size,
            threads=c.threads,
        )
        return predicted_cost(table, self.input_shape)

    def batches(self, split: str, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``n`` batches of a split, materialised (same data for every trial)."""
        return list(islice(iter(self.loaders[split]), n))

    def pruner(self, model: nn.Module) -> Pruner:
        """Channel groups and filter scores of the unpruned ``model``."""
        cfg = self.config.search
        return Pruner(
            model,
            self.example_input,
            importance=cfg.importance,
            calibration=self.batches("train", 4),
            seed=cfg.seed,
        )

    @property
    def round_to(self) -> int:
        """Channel multiple: --round-to, else the latency backend's preferred multiple."""
        if self.config.search.round_to is not None:
            return self.config.search.round_to
        return default_round_to(self.config.cost.backend)

    def evaluator(self, model: nn.Module, pruner: Pruner) -> CandidateEvaluator:
        """The trial evaluator of this run's search settings (batches on the model's device)."""
        cfg = self.config.search
        return CandidateEvaluator(
            pruner,
            self.trial_cost(model, pruner),
            calibration=self.batches("train_eval", cfg.bn_batches),
            recalibration=self.batches("train_eval", 2 * cfg.bn_batches)[cfg.bn_batches :],
            val_batches=self.batches("val", cfg.val_batches or 10**9),
            train_batches=self.batches("train", cfg.finetune_steps),
            finetune_steps=cfg.finetune_steps,
            distill=cfg.distill,
            seed=cfg.seed,
        )

    def search(self, model: nn.Module, *, resume: bool = False) -> SearchResult:
        """Run or resume the search; writes search.json and spec.json."""
        cfg = self.config.search
        pruner = self.pruner(model)
        evaluator = self.evaluator(model, pruner)
        space = make_space(pruner, self.input_shape, cfg, round_to=self.round_to)
        result = run_search(
            evaluator,
            space,
            cfg,
            storage=cfg.storage or self.run.storage,
            resume=resume,
            warm_starts=warm_starts(pruner, space),
        )
        spec = pruner.spec(result.spec.keep)
        result.spec = spec
        self.run.write_json("search.json", result.to_dict())
        spec.save(self.run / "spec.json")
        return result

    def prune_and_finetune(self, model: nn.Module, spec: PruningSpec) -> tuple[nn.Module, dict]:
        """Apply ``spec``, fine-tune on train (select on val); writes pruned.pt."""
        pruned = apply_spec(model, self.example_input, spec)
        path = self.run / "pruned.pt"
        history = finetune(
            pruned,
            self.loaders["train"],
            self.loaders["val"],
            self.config.finetune,
            checkpoint=path,
        )
        save_atomic({"state_dict": pruned.state_dict(), "spec": spec.to_dict()}, path)
        spec.save(self.run / "spec.json")
        return pruned, {"epochs": history.epochs}

    def load_pruned(self) -> nn.Module:
        """Rebuild the pruned model from model.json + spec.json and load pruned.pt."""
        spec = PruningSpec.load(self.run / "spec.json")
        shape_only = PruningSpec(keep=spec.keep, original=spec.original)
        model = apply_spec(self.recipe.build(), self.example_input, shape_only)
        return load_weights(model, self.run / "pruned.pt").to(self.device)

    def test(self, model: nn.Module) -> dict[str, float]:
        """Accuracy on the held-out test split (used once per final model)."""
        return evaluate(model, self.loaders["test"], desc="test")


def run_prune(
    run_dir: str | Path,
    config: RunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    trust_code: bool = False,
) -> dict[str, Any]:
    """The whole pipeline; returns the report dictionary (also written to report.json)."""
    from iaprune.reports import build_report

    t0 = time.perf_counter()
    session = Session.create(
        run_dir, config, resume=resume, overwrite=overwrite, trust_code=trust_code
    )
    base = session.baseline()
    base_test = session.test(base)
    base_cost = session.measure(base, latency=True)
    result = session.search(base, resume=resume)
    pruned, history = session.prune_and_finetune(base, result.spec)
    session.run.write_json("finetune.json", history)
    report = build_report(
        session,
        result,
        base_test=base_test,
        base_cost=base_cost,
        pruned_test=session.test(pruned),
        pruned_cost=session.measure(pruned, latency=True),
        seconds=time.perf_counter() - t0,
    )
    session.run.write_json("report.json", report)
    _write_report_files(session.run.root)
    return report


def _write_report_files(run_dir: Path) -> None:
    """report.html / report.md next to report.json; a failure here loses nothing finished."""
    from iaprune.reports.render import write_reports

    try:
        write_reports(run_dir)
    except Exception as exc:  # plotting must never cost the user a finished run
        log.warning("report.html/report.md not written (%s); retry with `iaprune report`", exc)


def load_pruned(run_dir: str | Path, *, trust_code: bool = False) -> nn.Module:
    """Rebuild and load the pruned model of a finished run directory.

    A run whose model.json names a factory or a pickled model file needs ``trust_code``.
    """
    return Session.open(run_dir, trust_code=trust_code).load_pruned()


def _stored_recipe(run: RunDir, trust_code: bool) -> ModelRecipe:
    """The run's model.json (file targets relative to the run directory)."""
    return ModelRecipe.from_dict(run.read_json("model.json"), trust_code=trust_code, base=run.root)


def _absolute(path: str | None) -> str | None:
    """``path`` made absolute (``None`` stays ``None``)."""
    return None if path is None else str(Path(path).expanduser().absolute())
