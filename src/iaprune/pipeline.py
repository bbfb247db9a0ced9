"""The end-to-end pipeline: baseline -> search -> prune best -> fine-tune -> test -> report.

Every input is checked before any training (model forward on a data-shaped example,
registry names, storage, checkpoint, budget reachability, writable run directory), so
a bad value fails in seconds and is never saved in config.json.

Each stage's artefact is written atomically and only when the stage is complete:
``baseline.pt`` (with ``complete``), ``search.json`` + ``spec.json``, ``pruned.pt`` (with
the spec and fine-tuning settings it was made with), ``report.json``. Training in
progress lives in ``baseline.partial.pt`` / ``pruned.partial.pt`` and ``--resume``
continues it from its last finished epoch. ``--resume`` refuses a changed definition of
the run (see :data:`iaprune.resume.SAFE_CHANGES` for what may change) and skips
finished stages. A new run is self-contained: ``--checkpoint`` is copied in as
``baseline.pt`` and paths are stored absolute. Factory and pickled-file models of a run
read back from disk are built only with ``trust_code`` (``--trust-code``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch import nn

from iaprune.checks import (
    check_baseline_change,
    check_output,
    check_storage,
    check_writable,
    finished_baseline,
    saved_config,
    user_model_errors,
)
from iaprune.config import RunConfig
from iaprune.cost import (
    CostModel,
    CostReport,
    StaticCostModel,
    create_cost_model,
    measure_cost,
)
from iaprune.cost.latency import default_round_to, get_backend
from iaprune.data import DataBundle, create_dataset, make_loaders
from iaprune.errors import IAPruneError, one_line
from iaprune.model_source import ModelRecipe, resolve_model
from iaprune.pruning import Pruner, PruningSpec, apply_spec
from iaprune.resume import describe_changes, resume_config
from iaprune.rundir import RunDir
from iaprune.search import (
    CandidateEvaluator,
    SearchResult,
    SearchSpace,
    make_space,
    run_search,
    warm_starts,
)
from iaprune.search.samplers import create_sampler
from iaprune.search.study import check_reachable
from iaprune.train import evaluate, finetune, load_weights, save_atomic
from iaprune.train.checkpoint import load_state

log = logging.getLogger(__name__)


TABLE_CALIBRATE = 8
"""Whole pruned models timed to fit and check a latency table's correction (``--latency
predicted``); a table whose leave-one-out error misses the bounds is not searched on."""

REPORT_TIMING_SECONDS = 10.0
"""Wall-time limit of the report's interleaved latency comparison (after 5 rounds)."""


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
    """A run directory with its data, model recipe and unpruned model loaded.

    Models are trained, searched and fine-tuned on ``config.device``.
    """

    def __init__(
        self,
        run: RunDir | None,
        config: RunConfig,
        *,
        recipe: ModelRecipe | None = None,
        trust_code: bool = False,
    ) -> None:
        self._run = run
        self.config = config
        self.trust_code = trust_code
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        self.bundle: DataBundle = create_dataset(
            config.dataset,
            root=config.data_root,
            val_fraction=config.val_fraction,
            seed=config.seed,
            **config.dataset_options(),
        )
        self.loaders = make_loaders(self.bundle, config.finetune.batch_size, seed=config.seed)
        self.recipe = recipe or self._resolve_model()
        self.input_shape = (self.bundle.in_channels, *self.bundle.input_size)
        self.example_input = torch.randn(
            1, *self.input_shape, generator=torch.Generator().manual_seed(config.seed)
        )

    @property
    def run(self) -> RunDir:
        """The run directory (set once every input has been checked)."""
        if self._run is None:
            raise RuntimeError("the run directory is not prepared yet")
        return self._run

    def _resolve_model(self) -> ModelRecipe:
        """The model recipe; a factory that raises becomes a one-line error."""
        with user_model_errors(self.config.model):
            return resolve_model(
                self.config.model,
                num_classes=self.bundle.num_classes,
                in_channels=self.bundle.in_channels,
                width_mult=self.config.width_mult,
                trust_code=self.trust_code,
            )

    def build_model(self) -> nn.Module:
        """A fresh unpruned model (user factories' exceptions become one-line errors)."""
        with user_model_errors(self.config.model):
            return self.recipe.build()

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

        On resume the saved config wins except for the fields in :data:`SAFE_CHANGES`;
        ``explicit`` names the fields the user set (None: compare all of them). A factory
        named in ``config`` for a new run runs; a pickled model file, or a resumed run's
        factory, needs ``trust_code`` (see :mod:`iaprune.model_source`). A failed start
        leaves an overwritten run as it was (:meth:`RunDir.starting`).
        """
        if resume and overwrite:
            raise IAPruneError("--resume and --overwrite exclude each other")
        root = Path(run_dir)
        saved = saved_config(root) if resume else None
        if saved is not None:
            config = resume_config(saved, config, explicit)
            check_baseline_change(root, saved, config)
        check_writable(root)
        recipe = None
        if saved is not None and (root / "model.json").is_file():
            recipe = _stored_recipe(RunDir(root), trust_code)
        session = cls(None, config, recipe=recipe, trust_code=trust_code)
        session.validate(root, resume=resume)
        if saved is not None and saved != config:
            log.info("resuming with %s", describe_changes(saved, config))
        try:
            run = RunDir.prepare(root, resume=resume, overwrite=overwrite)
            with run.starting():
                session._run = run
                if saved is None:
                    session.adopt_inputs()
                session._write_if_changed("config.json", session.config.to_dict())
                session._write_if_changed("model.json", session.recipe.to_dict())
        except OSError as exc:
            raise IAPruneError(f"cannot write run directory {root}: {one_line(exc)}") from exc
        return session

    @classmethod
    def open(cls, run_dir: str | Path, *, trust_code: bool = False) -> Session:
        """Reopen a finished or partial run (a factory or file model needs ``trust_code``)."""
        run = RunDir.existing(run_dir)
        config = RunConfig.from_dict(run.read_json("config.json"))
        return cls(run, config, recipe=_stored_recipe(run, trust_code), trust_code=trust_code)

    def adopt_inputs(self) -> None:
        """Make a new run self-contained: --checkpoint and a model file copied in, paths absolute.

        The checkpoint is checked against the model and stored as a finished
        ``baseline.pt``, so a changed or missing external file cannot change the run.
        """
        c = self.config
        if c.checkpoint:
            model = self._load_checkpoint(self.build_model(), c.checkpoint)
            source = _absolute(c.checkpoint)
            state = {"state_dict": model.state_dict(), "complete": True, "source": source}
            save_atomic(state, self.run / "baseline.pt")
        if self.recipe.kind == "file":
            self.run.copy_in(self.recipe.path, "model.pt")
            self.recipe = replace(self.recipe, target="model.pt", base=self.run.root)
        self.config = replace(
            c,
            checkpoint=_absolute(c.checkpoint),
            data_root=_absolute(c.data_root),
            cost=replace(c.cost, table=_absolute(c.cost.table)),
        )

    def _write_if_changed(self, name: str, data: Any) -> None:
        """Write a JSON artefact unless it already holds ``data`` (resume leaves it as is)."""
        path = self.run / name
        if path.is_file():
            try:
                if self.run.read_json(name) == data:
                    return
            except IAPruneError:
                pass
        self.run.write_json(name, data)

    # -- checks before any work -------------------------------------------------------
    def validate(self, root: Path, *, resume: bool) -> None:
        """Everything that can fail before training: names, storage, model, budget."""
        cfg = self.config
        create_sampler(cfg.search.sampler, seed=cfg.search.seed)
        get_backend(cfg.cost.backend)
        if cfg.search.storage or (resume and (root / "study.db").is_file()):
            url = cfg.search.storage or RunDir(root).storage
            check_storage(url, cfg.search.study_name, resume=resume)
        model = self.build_model()
        self._check_forward(model)
        if cfg.checkpoint and not (resume and finished_baseline(root)):
            self._load_checkpoint(model, cfg.checkpoint)  # a resumed run has its own copy
        self._check_budget(model)

    def _check_forward(self, model: nn.Module) -> None:
        """One forward pass on a data-shaped example."""
        model.eval()
        try:
            with torch.no_grad():
                out = model(self.example_input)
        except Exception as exc:  # user models fail in any way
            raise IAPruneError(
                f"model {self.config.model!r} fails on input shape "
                f"{tuple(self.example_input.shape)} of {self.config.dataset}: {one_line(exc, 200)}"
            ) from exc
        check_output(out, self.bundle.num_classes, self.config.model)

    def _load_checkpoint(self, model: nn.Module, path: str | Path) -> nn.Module:
        """Load weights with a one-line, bounded error for anything unexpected."""
        try:
            return load_weights(model, path)
        except IAPruneError as exc:
            raise IAPruneError(one_line(exc, 400)) from exc
        except Exception as exc:  # a dict of the wrong shape, e.g. state_dict is a string
            raise IAPruneError(f"cannot load checkpoint {path}: {one_line(exc, 200)}") from exc

    def _check_budget(self, model: nn.Module) -> None:
        """Prunable groups exist and the smallest allowed model meets every budget."""
        cfg = self.config.search
        pruner = self.pruner(model)
        timed = cfg.objective.needs_latency  # a latency table is not built for this check
        cost = create_cost_model("measured", self.config.cost) if timed else StaticCostModel()
        evaluator = CandidateEvaluator(
            pruner,
            cost,
            calibration=[],
            val_batches=[],
        )
        check_reachable(evaluator, self.space(pruner), cfg)

    # -- costs ------------------------------------------------------------------------
    def measure(self, model: nn.Module, *, latency: bool) -> CostReport:
        """Costs of ``model`` on this run's input shape and timing settings."""
        return measure_cost(model, self.input_shape, latency=latency, timing=self.config.cost)

    def compare(
        self, base: nn.Module, pruned: nn.Module
    ) -> tuple[CostReport, CostReport, dict[str, Any]]:
        """Static costs of both models and their interleaved latency comparison.

        Returns the two cost reports (latency = geometric mean of the per-round medians,
        spread = width of its interval) and the check written to ``report.json``:
        latency ratio with its interval, whether an interval is wider than the
        tolerance, and for a ``--max-latency-ms`` budget whether the pruned model's
        upper bound meets it.
        """
        from iaprune.cost import CompareSettings, compare_latency

        cmp = compare_latency(
            {"baseline": base, "pruned": pruned},
            self.input_shape,
            self.config.cost,
            CompareSettings(max_seconds=REPORT_TIMING_SECONDS),
        )
        costs = []
        for name, model in (("baseline", base), ("pruned", pruned)):
            static = measure_cost(model, self.input_shape)
            lat = cmp.latency[name]
            costs.append(
                replace(
                    static,
                    latency_ms=lat.value,
                    latency_spread_ms=lat.high - lat.low,
                    latency_env={**cmp.env, "statistic": "geometric mean of round medians"},
                )
            )
        ratio, pruned_ms = cmp.ratios["pruned"], cmp.latency["pruned"]
        check: dict[str, Any] = {
            "ratio": ratio.to_dict(),
            "pruned_ms": pruned_ms.to_dict(),
            "baseline_ms": cmp.latency["baseline"].to_dict(),
            "rounds": cmp.rounds,
            "tolerance": cmp.settings.tolerance,
            "flagged": cmp.flagged(),
        }
        budget = self.config.search.objective.max_latency_ms
        if budget is not None:
            check["budget_ms"] = budget
            check["meets_budget"] = pruned_ms.high <= budget
            if not check["meets_budget"]:
                log.warning(
                    "the pruned model measures %.3f ms [%.3f, %.3f] here: its interval does "
                    "not meet --max-latency-ms %g",
                    pruned_ms.value,
                    pruned_ms.low,
                    pruned_ms.high,
                    budget,
                )
        for name in check["flagged"]:
            log.warning(
                "latency of %s varied by more than +-%.0f %% between rounds (busy machine?)",
                name,
                100 * cmp.settings.tolerance,
            )
        return costs[0], costs[1], check

    # -- stages ----------------------------------------------------------------------
    def baseline_done(self) -> dict[str, Any] | None:
        """The finished baseline.pt (None when absent or written by an interrupted run)."""
        return finished_baseline(self.run.root)

    def finished_baseline_model(self) -> nn.Module:
        """The unpruned model of a finished baseline (the copy of --checkpoint); never trains."""
        done = self.baseline_done()
        if done is not None:
            model = self.build_model()
            model.load_state_dict(done["state_dict"])
            return model.to(self.device)
        if self.config.checkpoint:  # runs from before --checkpoint was copied in
            model = self._load_checkpoint(self.build_model(), self.config.checkpoint)
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
            self.loaders["train"],
            self.loaders["val"],
            cfg,
            checkpoint=partial,
            desc="baseline",
        )
        state = {"state_dict": model.state_dict(), "complete": True, "epochs": cfg.epochs}
        save_atomic(state | {"history": history.epochs}, self.run / "baseline.pt")
        partial.unlink(missing_ok=True)
        return model

    def trial_cost(self, model: nn.Module, pruner: Pruner) -> CostModel:
        """Cost model of the search candidates: latency measured, predicted, or none.

        A predicted latency comes from the table at ``--latency-table``, by default at
        :func:`iaprune.cost.default_table_path` (where ``iaprune latency-table`` writes).
        """
        if not self.config.search.objective.needs_latency:
            return create_cost_model("static")
        c = self.config.cost
        if c.latency == "measured":
            return create_cost_model("measured", c)
        from iaprune.cost.lut import ERROR_BOUNDS, TABLE_TIMING, load_or_build

        per_point = c.timing.with_(warmup=TABLE_TIMING.warmup, repeats=TABLE_TIMING.repeats)
        table = load_or_build(
            c.table, model, self.input_shape, pruner.groups, per_point, calibrate=TABLE_CALIBRATE
        )
        if not table.fit_error():
            log.warning(
                "latency table %s was built without calibration models: its error on unseen "
                "models is unknown (rebuild it with --calibrate %d)",
                table.path,
                TABLE_CALIBRATE,
            )
        elif not table.reliable():
            err = table.fit_error()
            log.warning(
                "latency table %s predicts unseen models with %.1f %% median / %.1f %% max "
                "error (leave-one-out), worse than %g %% / %g %%: measuring every trial instead",
                table.path,
                err["median_pct"],
                err["max_pct"],
                *ERROR_BOUNDS,
            )
            return create_cost_model("measured", c)
        return create_cost_model("predicted", table)

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

    def space(self, pruner: Pruner) -> SearchSpace:
        """The search space over ``pruner``'s channel groups."""
        cfg = self.config.search
        return SearchSpace.from_groups(
            pruner.groups, min_ratio=cfg.min_ratio, min_keep=cfg.min_keep, round_to=self.round_to
        )

    def search_done(self) -> SearchResult | None:
        """The finished search (None when absent or when more trials are asked for)."""
        if not (self.run / "search.json").is_file():
            return None
        result = load_search_result(self.run)
        tried = result.trials + getattr(result, "failed", 0)
        return result if tried >= self.config.search.trials else None

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
        log.info("stage search: %d trials, sampler %s", cfg.trials, cfg.sampler)
        pruner = self.pruner(model)
        space = make_space(pruner, self.input_shape, cfg, round_to=self.round_to)
        result = run_search(
            self.evaluator(model, pruner),
            space,
            cfg,
            storage=cfg.storage or self.run.storage,
            resume=resume,
            warm_starts=warm_starts(pruner, space),
        )
        self.run.write_json("search.json", result.to_dict())
        result.spec.save(self.run / "spec.json")
        return result

    def finetune_record(self, spec: PruningSpec) -> dict[str, Any]:
        """What a pruned.pt was made from: the kept widths and the fine-tuning settings."""
        ft = self.config.finetune
        return {
            "keep": dict(spec.keep),
            "epochs": ft.epochs,
            "lr": ft.lr,
            "label_smoothing": ft.label_smoothing,
        }

    def finetune_done(self, spec: PruningSpec) -> bool:
        """Whether pruned.pt is a finished fine-tune of ``spec`` with the current settings."""
        path = self.run / "pruned.pt"
        return path.is_file() and load_state(path).get("made_from") == self.finetune_record(spec)

    def prune_and_finetune(self, model: nn.Module, spec: PruningSpec) -> tuple[nn.Module, dict]:
        """Apply ``spec``, fine-tune on train (select on val); writes pruned.pt when done.

        pruned.pt carries its spec, so it never disagrees with the weights even when a
        kill lands between writing it and spec.json.
        """
        log.info("stage finetune: %d epochs", self.config.finetune.epochs)
        pruned = apply_spec(model, self.example_input, spec)
        partial = self.run / "pruned.partial.pt"
        record = self.finetune_record(spec)
        history = finetune(
            pruned,
            self.loaders["train"],
            self.loaders["val"],
            self.config.finetune,
            checkpoint=partial,
            tag={"keep": record["keep"]},
        )
        state = {"state_dict": pruned.state_dict(), "spec": spec.to_dict(), "made_from": record}
        save_atomic(state | {"history": history.epochs}, self.run / "pruned.pt")
        spec.save(self.run / "spec.json")
        partial.unlink(missing_ok=True)
        return pruned, {"epochs": history.epochs}

    def pruned_spec(self) -> PruningSpec:
        """The spec pruned.pt was made from (spec.json for runs that predate it)."""
        saved = load_state(self.run / "pruned.pt").get("spec")
        if isinstance(saved, dict):
            return PruningSpec.from_dict(saved)
        return PruningSpec.load(self.run / "spec.json")

    def load_pruned(self) -> nn.Module:
        """Rebuild the pruned model from model.json and pruned.pt's spec, then load it."""
        spec = self.pruned_spec()
        shape_only = PruningSpec(keep=spec.keep, original=spec.original)
        model = apply_spec(self.build_model(), self.example_input, shape_only)
        return self._load_checkpoint(model, self.run / "pruned.pt").to(self.device)

    def test(self, model: nn.Module) -> dict[str, float]:
        """Accuracy on the held-out test split (used once per final model)."""
        return evaluate(model, self.loaders["test"], desc="test")


def load_search_result(run: RunDir) -> SearchResult:
    """search.json as a :class:`SearchResult`, with a one-line error when malformed."""
    data = run.read_json("search.json")
    try:
        data["spec"] = PruningSpec.from_dict(data["spec"])
        return SearchResult(**data)
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise IAPruneError(f"{run / 'search.json'} is invalid: {one_line(exc, 200)}") from exc


def run_prune(
    run_dir: str | Path,
    config: RunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    trust_code: bool = False,
    explicit: Collection[str] | None = None,
) -> dict[str, Any]:
    """The whole pipeline; returns the report dictionary (also written to report.json).

    On ``resume`` finished stages are skipped; a finished run resumed unchanged rewrites
    nothing and returns its report.
    """
    t0 = time.perf_counter()
    session = Session.create(
        run_dir,
        config,
        resume=resume,
        overwrite=overwrite,
        trust_code=trust_code,
        explicit=explicit,
    )
    base = session.baseline()
    result = session.search_done() if resume else None
    searched = result is None
    if result is None:
        result = session.search(base, resume=resume)
    else:
        log.info("stage search: finished (%d trials), skipped", result.trials)
    finetuned = resume and session.finetune_done(result.spec)
    if finetuned and not searched and (session.run / "report.json").is_file():
        log.info("every stage is finished; nothing to do")
        return session.run.read_json("report.json")
    if finetuned:
        log.info("stage finetune: finished, skipped")
        pruned = session.load_pruned()
    else:
        pruned, history = session.prune_and_finetune(base, result.spec)
        session.run.write_json("finetune.json", history)
    return write_report(session, result, base, pruned, seconds=time.perf_counter() - t0)


def write_report(
    session: Session, result: SearchResult, base: nn.Module, pruned: nn.Module, *, seconds: float
) -> dict[str, Any]:
    """Test both models, measure their costs, write report.json/html/md.

    Latency is timed A/B: both models interleaved in this process
    (:func:`iaprune.cost.compare_latency`), so the report states the latency ratio with
    its confidence interval, flags an interval wider than +-5 %, and checks a latency
    budget against the upper bound of the pruned model's interval.
    """
    from iaprune.reports import build_report

    log.info("stage report: testing and measuring both models")
    base_cost, pruned_cost, check = session.compare(base, pruned)
    report = build_report(
        session.config,
        result,
        run_dir=session.run.root,
        round_to=session.round_to,
        base_test=session.test(base),
        base_cost=base_cost,
        pruned_test=session.test(pruned),
        pruned_cost=pruned_cost,
        seconds=seconds,
        latency_check=check,
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

    A run whose model is a user factory or a pickled file needs ``trust_code=True``.
    """
    return Session.open(run_dir, trust_code=trust_code).load_pruned()


def _stored_recipe(run: RunDir, trust_code: bool) -> ModelRecipe:
    """The run's model.json (file targets relative to the run directory)."""
    data = run.read_json("model.json")
    try:
        return ModelRecipe.from_dict(data, trust_code=trust_code, base=run.root)
    except (IAPruneError, TypeError, KeyError, ValueError, AttributeError) as exc:
        raise IAPruneError(f"{run / 'model.json'} is invalid: {one_line(exc)}") from exc


def _absolute(path: str | None) -> str | None:
    """``path`` made absolute (``None`` stays ``None``)."""
    return None if path is None else str(Path(path).expanduser().absolute())
