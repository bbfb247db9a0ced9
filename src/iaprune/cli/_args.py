"""Argument groups shared by subcommands and their conversion to config objects."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from iaprune.config import CostConfig, FinetuneConfig, ObjectiveConfig, RunConfig, SearchConfig
from iaprune.flags import CONFIG_PATHS


def add_run_args(p: argparse.ArgumentParser, *, default_dir: bool = True) -> None:
    """Model, data and run-directory options."""
    g = p.add_argument_group("model and data")
    g.add_argument(
        "--model",
        default="vgg16",
        help="zoo name, 'module.path:factory', 'path/to/file.py:factory', or a file saved "
        "with torch.save(model) (a file needs --trust-code; copied into the run directory "
        "as model.pt)",
    )
    g.add_argument("--width-mult", type=float, default=0.25, help="width of zoo models")
    g.add_argument(
        "--checkpoint",
        help="trained weights (state dict) of the unpruned model; copied into the run "
        "directory as baseline.pt",
    )
    g.add_argument("--dataset", default="digits", help="see 'iaprune datasets'")
    g.add_argument("--data-root", help="data directory (default: per dataset)")
    g.add_argument(
        "--download",
        action="store_true",
        help="fetch missing mnist/fashion-mnist files from the official mirror (md5-checked)",
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of the training set held out for the search",
    )
    g.add_argument(
        "--image-size", type=int, help="square crop fed to the model (imagefolder; default 224)"
    )
    g.add_argument(
        "--pad-to", type=int, help="zero-pad digit images to this side (mnist/fashion-mnist: 32)"
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--device",
        default="cpu",
        help="cpu (default), cuda, cuda:N or auto: where training, search and fine-tuning run",
    )
    g.add_argument(
        "--data-workers",
        type=int,
        default=0,
        metavar="N",
        help="processes that decode and augment training images in the background "
        "(default 0: the main process; try the number of free cores for imagefolder)",
    )
    g.add_argument(
        "--baseline-epochs",
        type=int,
        default=30,
        help="epochs to train the baseline when no --checkpoint is given",
    )
    g.add_argument("--baseline-lr", type=float, default=0.05)
    r = p.add_argument_group("run directory")
    r.add_argument("--run-dir", default=None, help="output directory (default: runs/MODEL-DATASET)")
    r.add_argument("--resume", action="store_true", help="continue an interrupted run")
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run directory (removed only once the new run has started)",
    )


def add_search_args(p: argparse.ArgumentParser) -> None:
    """Search and objective options."""
    g = p.add_argument_group("search")
    g.add_argument("--sampler", default="gp", help="gp (default), tpe, random or uniform")
    g.add_argument("--trials", type=int, default=None, help="number of search trials (30)")
    g.add_argument(
        "--importance",
        default="group_l1",
        help="group_l1 (default), l1, l2, bn_scale, taylor or random",
    )
    g.add_argument("--min-ratio", type=float, default=0.05, help="smallest keep-ratio per group")
    g.add_argument("--min-keep", type=int, default=1, help="fewest filters any group keeps")
    g.add_argument(
        "--round-to",
        type=int,
        default=None,
        help="keep multiples of N filters (default: the backend's, 8 on CPU)",
    )
    g.add_argument(
        "--bn-batches",
        type=int,
        default=10,
        help="training batches to recalibrate BatchNorm per trial",
    )
    g.add_argument(
        "--trial-steps", type=int, default=0, help="fine-tune steps per trial before validation"
    )
    g.add_argument(
        "--distill",
        type=float,
        default=0.0,
        help="weight of distillation from the unpruned model in --trial-steps (0 to 1)",
    )
    g.add_argument(
        "--space",
        default="budget",
        help="budget (default: allocations scaled onto the MACs/params/latency budget), local "
        "(moves of every group around the best warm start, scaled onto the budget) or free "
        "(one independent keep-ratio per group)",
    )
    g.add_argument(
        "--tie",
        default="stage",
        help="stage (default: groups of one width, resolution and kind share a dimension) or none",
    )
    g.add_argument(
        "--no-warm-start",
        dest="warm_start",
        action="store_false",
        help="do not enqueue the heuristics' allocations as the first trials",
    )
    g.add_argument(
        "--startup-trials",
        type=int,
        default=None,
        help="random trials before the GP/TPE model (default: trials / 4, 2 to 10)",
    )
    g.add_argument(
        "--rescore",
        type=int,
        default=3,
        help="best searched trials (distinct widths) that join the warm starts as finalists "
        "of the final choice (default 3; 0: take the best trial, no finalists)",
    )
    g.add_argument(
        "--final-steps",
        type=int,
        default=100,
        help="distillation steps from the unpruned model before a finalist is scored again "
        "(default 100; 0: the trial scores decide, the two contenders are scored once more "
        "by the trial evaluator to measure the noise)",
    )
    g.add_argument(
        "--final-rungs",
        default="",
        metavar="STEPS:N,...",
        help="successive halving after the --final-steps scores: the best N finalists "
        "continue their distillation to STEPS steps in all and are scored again, rung by "
        "rung (e.g. 200:4,400:2; default: none)",
    )
    g.add_argument(
        "--final-time",
        type=float,
        default=1.0,
        help="time limit of the searched finalists' first scores, as a multiple of the "
        "search's own time (default 1.0; 0: no limit); the warm starts, the --final-rungs "
        "and the two noise scores always run",
    )
    g.add_argument(
        "--storage",
        help="Optuna storage URL (default: SQLite in the run directory); e.g. "
        "postgresql://user@host/db shared by workers on several machines (the password "
        "from PGPASSWORD or ~/.pgpass; one in the URL is stored and shown masked)",
    )
    g.add_argument(
        "--study-name",
        help="study name in the storage (default: the run directory's name); the same "
        "command started on another machine joins the study as a worker",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes running trials at once on this machine (default 1)",
    )
    g.add_argument(
        "--heartbeat",
        type=int,
        default=10,
        help="seconds between trial heartbeats; a trial silent for 3 beats (its worker "
        "died) is failed and retried (default 10)",
    )
    g.add_argument(
        "--storage-retry",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long every process retries an unreachable study database (a server "
        "restart) before it stops (default 600; 0: stop at once)",
    )
    o = p.add_argument_group("objective")
    o.add_argument(
        "--objective",
        default="constrained",
        help="constrained (default), weighted, or pareto (accuracy vs --pareto-cost)",
    )
    o.add_argument("--pareto-cost", default="macs", help="macs or latency (pareto objective)")
    o.add_argument("--max-macs", type=float, help="MACs budget as a ratio of the original")
    o.add_argument("--max-params", type=float, help="parameter budget ratio")
    o.add_argument("--max-memory", type=float, help="activation-memory budget ratio")
    o.add_argument(
        "--max-latency",
        type=float,
        help="latency budget as a ratio of the unpruned model's latency on --backend, "
        "--batch-size-latency and --threads (0.4 = 40 %%)",
    )
    o.add_argument("--max-latency-ms", type=float, help="latency budget in ms per batch")
    o.add_argument("--w-macs", type=float, default=0.0, help="weighted form: MACs penalty")
    o.add_argument("--w-params", type=float, default=0.0)
    o.add_argument("--w-memory", type=float, default=0.0)
    o.add_argument("--w-latency", type=float, default=0.0)


def add_cost_args(p: argparse.ArgumentParser) -> None:
    """Latency measurement options."""
    g = p.add_argument_group("latency")
    g.add_argument("--backend", default="torch", help="latency backend")
    g.add_argument("--batch-size-latency", type=int, default=1, dest="latency_batch")
    g.add_argument("--threads", type=int, default=1)
    g.add_argument("--repeats", type=int, default=30)
    g.add_argument(
        "--latency",
        default="measured",
        help="measured (time every trial) or predicted (latency table)",
    )
    g.add_argument(
        "--latency-table",
        help="latency table file for --latency predicted (default: the shared one in "
        "$IAPRUNE_LUT_DIR, as 'iaprune latency-table' writes it, else "
        "RUN_DIR/latency_table.json)",
    )


def add_finetune_args(p: argparse.ArgumentParser) -> None:
    """Fine-tuning options."""
    g = p.add_argument_group("fine-tuning")
    g.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs after pruning")
    g.add_argument("--lr", type=float, default=0.01)
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--label-smoothing", type=float, default=0.0)
    g.add_argument(
        "--sync-bn",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="under torchrun, BatchNorm uses the statistics of the global batch, as one "
        "process would (no effect without torchrun)",
    )


def add_pipeline_args(p: argparse.ArgumentParser) -> None:
    """Every option of a full run: model/data, search, fine-tuning and latency."""
    add_run_args(p)
    add_search_args(p)
    add_finetune_args(p)
    add_cost_args(p)


def objective_config(a: argparse.Namespace) -> ObjectiveConfig:
    """ObjectiveConfig from parsed arguments (default budget: 50% of MACs)."""
    budgets = (a.max_macs, a.max_params, a.max_memory, a.max_latency, a.max_latency_ms)
    max_macs = a.max_macs
    if a.objective == "constrained" and all(b is None for b in budgets):
        max_macs = 0.5
    return ObjectiveConfig(
        kind=a.objective,
        max_macs=max_macs,
        max_params=a.max_params,
        max_memory=a.max_memory,
        max_latency=a.max_latency,
        max_latency_ms=a.max_latency_ms,
        w_macs=a.w_macs,
        w_params=a.w_params,
        w_memory=a.w_memory,
        w_latency=a.w_latency,
        pareto_cost=a.pareto_cost,
    )


def run_config(a: argparse.Namespace) -> RunConfig:
    """RunConfig from parsed arguments."""
    search = SearchConfig(
        sampler=a.sampler,
        trials=30 if a.trials is None else a.trials,
        seed=a.seed,
        importance=a.importance,
        min_ratio=a.min_ratio,
        min_keep=a.min_keep,
        round_to=a.round_to,
        bn_batches=a.bn_batches,
        finetune_steps=a.trial_steps,
        distill=a.distill,
        space=a.space,
        tie=a.tie,
        warm_start=a.warm_start,
        startup_trials=a.startup_trials,
        rescore=a.rescore,
        final_steps=a.final_steps,
        final_time=a.final_time,
        final_rungs=a.final_rungs,
        storage=a.storage,
        workers=a.workers,
        heartbeat=a.heartbeat,
        storage_retry=a.storage_retry,
        **({"study_name": a.study_name} if a.study_name else {}),
        objective=objective_config(a),
    )
    return RunConfig(
        model=a.model,
        dataset=a.dataset,
        data_root=a.data_root,
        download=a.download,
        width_mult=a.width_mult,
        checkpoint=a.checkpoint,
        baseline_epochs=a.baseline_epochs,
        baseline_lr=a.baseline_lr,
        val_fraction=a.val_fraction,
        seed=a.seed,
        device=a.device,
        data_workers=a.data_workers,
        image_size=a.image_size,
        pad_to=a.pad_to,
        search=search,
        finetune=FinetuneConfig(
            epochs=a.epochs,
            lr=a.lr,
            batch_size=a.batch_size,
            label_smoothing=a.label_smoothing,
            sync_bn=a.sync_bn,
        ),
        cost=CostConfig(
            backend=a.backend,
            batch_size=a.latency_batch,
            threads=a.threads,
            repeats=a.repeats,
            latency=a.latency,
            table=a.latency_table,
        ),
    )


def default_run_dir(a: argparse.Namespace) -> str:
    """``runs/MODEL-DATASET`` unless --run-dir is given."""
    if a.run_dir:
        return a.run_dir
    name = a.model.replace(":", "_").replace("/", "_").replace(".", "_")
    return f"runs/{name}-{a.dataset}"


def explicit_paths(a: argparse.Namespace) -> set[str] | None:
    """Config fields set by options given on the command line (None: unknown, i.e. all)."""
    given = getattr(a, "explicit", None)
    if given is None:
        return None
    return {path for dest in given for path in CONFIG_PATHS.get(dest, ())}


def given_dests(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """Destinations of the options present in ``argv`` (parsed again without defaults)."""
    saved: list[tuple[argparse.Action, object]] = []
    parsers = [parser]
    while parsers:
        for action in parsers.pop()._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
            elif action.dest != "help":
                saved.append((action, action.default))
                action.default = argparse.SUPPRESS
    try:
        namespace = parser.parse_args(argv)
    finally:
        for action, default in saved:
            action.default = default
    return set(vars(namespace)) - {"func", "command"}
