"""Every run setting in one table: its config path, the option that sets it, and its policy.

A setting is a dotted path of ``config.json`` (:meth:`iaprune.config.RunConfig.to_dict`,
flattened). Its :class:`Flag` says which command-line option sets it (the argparse
destination; none for settings only the Python API sets), whether ``--resume`` may change
it (it does not alter what finished stages computed) and whether the workers of one study
may differ in it (paths, devices, storage, and the final choice's settings, which only the
process that created the study uses). :data:`SAFE_CHANGES`, :data:`LOCAL_KEYS` and
:data:`CONFIG_PATHS` are read off this one table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flag:
    """One setting: ``path`` in config.json, set by option ``dest``, and its policy."""

    path: str
    dest: str | None = None
    resume: bool = False
    local: bool = False


FLAGS: tuple[Flag, ...] = (
    Flag("model", "model"),
    Flag("width_mult", "width_mult"),
    Flag("checkpoint", "checkpoint", local=True),
    Flag("dataset", "dataset"),
    Flag("data_root", "data_root", local=True),
    Flag("download", "download", resume=True, local=True),
    Flag("val_fraction", "val_fraction"),
    Flag("image_size", "image_size"),
    Flag("pad_to", "pad_to"),
    Flag("seed", "seed"),
    Flag("search.seed", "seed"),
    Flag("device", "device", resume=True, local=True),
    Flag("data_workers", "data_workers", resume=True, local=True),
    Flag("baseline_epochs", "baseline_epochs", resume=True),
    Flag("baseline_lr", "baseline_lr", resume=True),
    Flag("search.sampler", "sampler"),
    Flag("search.trials", "trials", resume=True),
    Flag("search.importance", "importance"),
    Flag("search.min_ratio", "min_ratio"),
    Flag("search.min_keep", "min_keep"),
    Flag("search.round_to", "round_to"),
    Flag("search.bn_batches", "bn_batches"),
    Flag("search.finetune_steps", "trial_steps"),
    Flag("search.distill", "distill"),
    Flag("search.space", "space"),
    Flag("search.tie", "tie"),
    Flag("search.warm_start", "warm_start"),
    Flag("search.startup_trials", "startup_trials"),
    Flag("search.rescore", "rescore", resume=True),
    Flag("search.final_steps", "final_steps", local=True),
    Flag("search.final_time", "final_time", local=True),
    Flag("search.final_rungs", "final_rungs", local=True),
    Flag("search.storage", "storage", resume=True, local=True),
    Flag("search.study_name", "study_name", local=True),
    Flag("search.workers", "workers", resume=True, local=True),
    Flag("search.heartbeat", "heartbeat", resume=True, local=True),
    Flag("search.storage_retry", "storage_retry", resume=True, local=True),
    Flag("search.objective.kind", "objective"),
    Flag("search.objective.pareto_cost", "pareto_cost"),
    Flag("search.objective.max_macs", "max_macs"),
    Flag("search.objective.max_params", "max_params"),
    Flag("search.objective.max_memory", "max_memory"),
    Flag("search.objective.max_latency", "max_latency"),
    Flag("search.objective.max_latency_ms", "max_latency_ms"),
    Flag("search.objective.w_macs", "w_macs"),
    Flag("search.objective.w_params", "w_params"),
    Flag("search.objective.w_memory", "w_memory"),
    Flag("search.objective.w_latency", "w_latency"),
    Flag("finetune.epochs", "epochs", resume=True),
    Flag("finetune.lr", "lr", resume=True),
    Flag("finetune.batch_size", "batch_size"),
    Flag("finetune.label_smoothing", "label_smoothing", resume=True),
    Flag("finetune.sync_bn", "sync_bn", resume=True),
    Flag("cost.backend", "backend"),
    Flag("cost.batch_size", "latency_batch"),
    Flag("cost.threads", "threads"),
    Flag("cost.repeats", "repeats", resume=True),
    Flag("cost.latency", "latency"),
    Flag("cost.table", "latency_table"),
    Flag("cost.warmup", resume=True),
    Flag("search.final_distill", local=True),
)
"""Every setting a command-line option, a resume or a worker treats specially."""

SAFE_CHANGES = frozenset(f.path for f in FLAGS if f.resume)
"""Settings ``--resume`` may change: they do not alter what the finished stages computed."""

LOCAL_KEYS = frozenset(f.path for f in FLAGS if f.local)
"""Settings that may differ between the workers of one study."""


def _config_paths() -> dict[str, tuple[str, ...]]:
    paths: dict[str, tuple[str, ...]] = {}
    for f in FLAGS:
        if f.dest is not None:
            paths[f.dest] = (*paths.get(f.dest, ()), f.path)
    return paths


CONFIG_PATHS: dict[str, tuple[str, ...]] = _config_paths()
"""Which settings (config paths) each command-line option (argparse destination) sets."""
