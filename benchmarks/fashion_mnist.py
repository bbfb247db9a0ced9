"""Real-data evidence on Fashion-MNIST: GP-BO against uniform, random, TPE, torch-pruning.

One command, resumable (every finished baseline and method row is cached as JSON, every
search lives in its own SQLite study, so a rerun skips finished work)::

    python benchmarks/fashion_mnist.py                  # full run, results in benchmarks/results/
    python benchmarks/fashion_mnist.py --smoke --out /tmp/fm   # same code path on digits, < 1 min

For each model and each MACs budget (keep 50 % / 25 % of the MACs) every method prunes the
same trained baseline, is fine-tuned with the same recipe and is tested once on the test split.
The searches only ever see the validation split carved from the training set.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

os.environ.setdefault("IAPRUNE_NO_PROGRESS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Subset  # noqa: E402

import iaprune  # noqa: E402
from iaprune.config import (  # noqa: E402
    CostConfig,
    FinetuneConfig,
    ObjectiveConfig,
    SearchConfig,
)
from iaprune.cost import count_macs, count_params, list_backends, measure_cost  # noqa: E402
from iaprune.pipeline import RunConfig, Session  # noqa: E402
from iaprune.pruning import Pruner, PruningSpec, apply_spec  # noqa: E402
from iaprune.rundir import sqlite_url  # noqa: E402
from iaprune.search import CandidateEvaluator, SearchSpace, run_search  # noqa: E402
from iaprune.train import evaluate, finetune  # noqa: E402
from iaprune.train.checkpoint import refused_global  # noqa: E402

HERE = Path(__file__).resolve().parent
T0 = time.perf_counter()


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Profile:
    """Everything that defines a benchmark run (saved in the results header)."""

    dataset: str
    models: dict[str, tuple[float, int]]  # name -> (width_mult, baseline epochs)
    budgets: tuple[float, ...]
    trials: int
    gp_seeds: tuple[int, ...]
    baseline_lr: float = 0.05
    batch_size: int = 128
    ft_epochs: int = 1
    ft_lr: float = 0.01
    ft_subset: int = 8000  # fixed training subset used by every fine-tune
    search_val_batches: int = 12  # validation batches scoring a trial (x batch_size images)
    bn_batches: int = 5  # training batches re-estimating BatchNorm per trial
    w_latency: float = 0.1
    search_lat_repeats: int = 20
    final_lat_repeats: int = 100
    methods: tuple[str, ...] = (
        "uniform-l1",
        "random",
        "tpe",
        "gp-bo",
        "gp-bo-latency",
        "tp-magnitude",
    )
    extra: dict[str, Any] = field(default_factory=dict)
    download: bool = False  # fetch the official files (md5-checked) when not installed
    trial_steps: int = 0  # SGD steps per search trial (iaprune --trial-steps); 0: BN only
    trial_lr: float = 0.01
    trust_cache: bool = False  # unpickle model caches of older versions (whole modules)

    @property
    def variant(self) -> str:
        """Suffix of row keys and result files for a non-default trial evaluation."""
        return f"_ts{self.trial_steps}" if self.trial_steps else ""


FULL = Profile(
    dataset="fashion-mnist",
    models={"vgg16": (0.25, 2), "resnet56": (0.375, 2)},
    budgets=(0.5, 0.25),
    trials=16,
    ft_subset=6000,
    gp_seeds=(0, 1),
)

SMOKE = Profile(
    dataset="digits",
    models={"vgg16": (0.125, 1)},
    budgets=(0.5,),
    trials=3,
    gp_seeds=(0, 1),
    batch_size=64,
    ft_subset=256,
    search_val_batches=2,
    bn_batches=2,
    search_lat_repeats=3,
    final_lat_repeats=5,
)

METHOD_LABEL = {
    "uniform-l1": "uniform L1",
    "random": "random search",
    "tpe": "TPE",
    "gp-bo": "GP-BO (ours)",
    "gp-bo-latency": "GP-BO latency-aware (ours)",
    "tp-magnitude": "torch-pruning global magnitude",
}
SAMPLER = {
    "uniform-l1": "uniform",
    "random": "random",
    "tpe": "tpe",
    "gp-bo": "gp",
    "gp-bo-latency": "gp",
}


def log(msg: str) -> None:
    """Timestamped progress line (flushed: the full run is monitored through a log file)."""
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp} +{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    tmp.replace(path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def machine_info() -> dict[str, Any]:
    import optuna
    import torch_pruning

    from iaprune.cost.lut import _device_name

    cpu = _device_name("cpu")
    ort_ok = "onnxruntime" in list_backends(available_only=True)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "torch_pruning": torch_pruning.__version__,
        "iaprune": iaprune.__version__,
        "onnxruntime_backend": ort_ok,
    }


# ----------------------------------------------------------------------------- per model
class ProgressEvaluator(CandidateEvaluator):
    """CandidateEvaluator that prints one line per trial."""

    label = ""
    count = 0

    def __call__(self, keep):  # type: ignore[override]
        result = super().__call__(keep)
        self.count += 1
        lat = result.ratios.get("latency")
        extra = f" lat x{lat:.3f}" if lat is not None else ""
        log(
            f"    {self.label} trial {self.count}: val acc {result.accuracy:.4f} "
            f"MACs x{result.ratios['macs']:.3f}{extra}"
        )
        return result


class ModelBench:
    """One trained baseline and everything the rows of this model share."""

    def __init__(self, name: str, prof: Profile, cache: Path) -> None:
        self.name = name
        self.prof = prof
        self.cache = cache
        width, epochs = prof.models[name]
        self.width = width
        run_dir = cache / f"{name}-baseline"
        config = RunConfig(
            model=name,
            dataset=prof.dataset,
            download=prof.download,
            width_mult=width,
            baseline_epochs=epochs,
            baseline_lr=prof.baseline_lr,
            seed=0,
            finetune=FinetuneConfig(
                epochs=prof.ft_epochs, lr=prof.ft_lr, batch_size=prof.batch_size
            ),
            cost=CostConfig(
                backend="torch", batch_size=1, threads=1, warmup=5, repeats=prof.final_lat_repeats
            ),
        )
        self.base_json = cache / f"baseline_{name}.json"
        resume = run_dir.is_dir() and any(run_dir.iterdir())
        if resume and not self.base_json.is_file():
            # baseline.pt may be a mid-training checkpoint: train again from scratch
            for f in run_dir.iterdir():
                f.unlink()
            resume = False
        self.session = Session.create(run_dir, config, resume=resume)
        s = self.session
        self.shape = s.input_shape
        if self.base_json.is_file():
            log(f"{name}: cached baseline")
            self.model = s.baseline()
            self.info = read_json(self.base_json)
        else:
            log(
                f"{name} (width {width}): training the baseline for {epochs} epochs "
                f"on {len(s.bundle.train)} images"
            )
            t = time.perf_counter()
            self.model = s.baseline()
            secs = time.perf_counter() - t
            test = s.test(self.model)
            self.info = {
                "model": name,
                "width_mult": width,
                "epochs": epochs,
                "train_images": len(s.bundle.train),
                "val_images": len(s.bundle.val),
                "test_images": len(s.bundle.test),
                "input_shape": list(self.shape),
                "test_top1": test["top1"],
                "macs": count_macs(self.model, self.shape),
                "params": count_params(self.model),
                "train_seconds": secs,
            }
            write_json(self.base_json, self.info)
            log(f"{name}: baseline test acc {test['top1']:.4f} ({secs:.0f}s)")
        self.model.eval()
        # Data shared by every row: the same batches for every trial and every fine-tune.
        bs = prof.batch_size
        val_loader = DataLoader(s.bundle.val, batch_size=bs, shuffle=False)
        self.val_batches = list(islice(iter(val_loader), prof.search_val_batches))
        self.calibration = list(islice(iter(s.loaders["train_eval"]), prof.bn_batches))
        g = torch.Generator().manual_seed(0)
        n = min(prof.ft_subset, len(s.bundle.train))
        self.ft_indices = torch.randperm(len(s.bundle.train), generator=g)[:n].tolist()
        self.pruner = Pruner(self.model, s.example_input, importance="l1", seed=0)
        # the same augmented training batches for every trial's short fine-tune
        torch.manual_seed(0)
        n_trial = min(prof.trial_steps, 20)
        self.trial_batches = list(islice(iter(s.loaders["train"]), n_trial)) if n_trial else []
        self.static_eval = self._evaluator(latency=False)
        self.latency_eval: ProgressEvaluator | None = None
        self.info["groups"] = len(self.pruner.groups)

    def _evaluator(self, *, latency: bool) -> ProgressEvaluator:
        rep = self.prof.search_lat_repeats

        def measure(m: nn.Module, _keep: Any) -> Any:
            return measure_cost(
                m, self.shape, latency=latency, backend="torch", threads=1, warmup=3, repeats=rep
            )

        steps = self.prof.trial_steps
        return ProgressEvaluator(
            self.pruner,
            measure,
            calibration=self.calibration,
            val_batches=self.val_batches,
            train_batches=self.trial_batches if steps else (),
            finetune_steps=steps,
            lr=self.prof.trial_lr,
            seed=0,
        )

    # -- shared final stage --------------------------------------------------------------
    def finetune_and_test(self, pruned: nn.Module, seed: int) -> dict[str, Any]:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        loader = DataLoader(
            Subset(self.session.bundle.train, self.ft_indices),
            batch_size=self.prof.batch_size,
            shuffle=True,
            generator=gen,
        )
        cfg = FinetuneConfig(
            epochs=self.prof.ft_epochs, lr=self.prof.ft_lr, batch_size=self.prof.batch_size
        )
        t = time.perf_counter()
        finetune(pruned, loader, self.val_batches, cfg, desc="finetune")  # type: ignore[arg-type]
        ft_secs = time.perf_counter() - t
        pruned.eval()
        test = self.session.test(pruned)["top1"]
        return {
            "test_top1": test,
            "finetune_seconds": ft_secs,
            "macs": count_macs(pruned, self.shape),
            "params": count_params(pruned),
        }

    # -- rows ----------------------------------------------------------------------------
    def search_row(
        self, key: str, method: str, budget: float, seed: int
    ) -> tuple[dict[str, Any], nn.Module]:
        if method == "gp-bo-latency":
            objective = ObjectiveConfig(
                kind="weighted", w_latency=self.prof.w_latency, max_macs=budget
            )
            if self.latency_eval is None:
                self.latency_eval = self._evaluator(latency=True)
            evaluator = self.latency_eval
        else:
            objective = ObjectiveConfig(max_macs=budget)
            evaluator = self.static_eval
        cfg = SearchConfig(
            sampler=SAMPLER[method],
            trials=self.prof.trials,
            seed=seed,
            importance="l1",
            bn_batches=self.prof.bn_batches,
            study_name=key,
            objective=objective,
        )
        space = SearchSpace.from_groups(
            self.pruner.groups, min_ratio=cfg.min_ratio, min_keep=cfg.min_keep
        )
        evaluator.label, evaluator.count = key, 0
        storage = sqlite_url(self.cache / (key + ".db"))
        result = run_search(evaluator, space, cfg, storage=storage, resume=True)
        spec = self.pruner.spec(result.spec.keep)
        pruned = apply_spec(self.model, self.session.example_input, spec)
        out = {
            "search_seconds": result.seconds,
            "trials": result.trials,
            "best_trial": result.best_trial,
            "best_value": result.best_value,
            "val_top1": result.accuracy,
            "search_ratios": result.ratios,
            "keep": dict(spec.keep),
            "objective": asdict(objective),
            "history": [
                {
                    "number": h["number"],
                    "value": h["value"],
                    "accuracy": h["accuracy"],
                    "feasible": h["feasible"],
                    "macs": h["ratios"].get("macs"),
                }
                for h in result.history
            ],
        }
        return out, pruned

    def tp_row(self, budget: float) -> tuple[dict[str, Any], nn.Module]:
        import torch_pruning as tp

        model = copy.deepcopy(self.model).eval()
        last_linear = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        steps = 100
        pruner = tp.pruner.MagnitudePruner(
            model,
            self.session.example_input,
            importance=tp.importance.MagnitudeImportance(p=1),
            global_pruning=True,
            pruning_ratio=0.95,
            max_pruning_ratio=0.95,
            iterative_steps=steps,
            ignored_layers=[last_linear],
        )
        base = count_macs(self.model, self.shape)
        t = time.perf_counter()
        done = 0
        while count_macs(model, self.shape) / base > budget and done < steps:
            pruner.step()
            done += 1
        secs = time.perf_counter() - t
        ratio = count_macs(model, self.shape) / base
        val = evaluate(model, self.val_batches, desc="validate")["top1"]
        return {
            "search_seconds": secs,
            "trials": 0,
            "tp_steps": done,
            "val_top1": val,
            "search_ratios": {"macs": ratio},
            "history": [],
        }, model

    def save_pruned(self, pruned: nn.Module, key: str) -> None:
        """Cache a row's final model as data only: kept width per group and the weights."""
        modules = dict(pruned.named_modules())
        keep = {g.name: modules[g.name].out_channels for g in self.pruner.groups}
        data = {"keep": keep, "state_dict": pruned.state_dict()}
        torch.save(data, self.cache / f"model_{key}.pt")

    def load_pruned(self, key: str) -> nn.Module:
        """Rebuild a cached row model (``weights_only``: a cache file never runs code)."""
        path = self.cache / f"model_{key}.pt"
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            if not refused_global(exc):
                raise
            if not self.prof.trust_cache:
                raise SystemExit(
                    f"{path} is a pickled module from an older benchmark version; delete it "
                    "and its row_*.json to recompute, or pass --trust-cache if you made it"
                ) from exc
            return torch.load(path, map_location="cpu", weights_only=False)
        original = {g.name: g.channels for g in self.pruner.groups}
        spec = PruningSpec(keep=data["keep"], original=original)
        model = apply_spec(self.model, self.session.example_input, spec)
        model.load_state_dict(data["state_dict"])
        return model

    def row(self, method: str, budget: float, seed: int) -> dict[str, Any]:
        searched = method not in ("uniform-l1", "tp-magnitude")  # only these use trials
        key = f"{self.name}_{method}_m{budget:g}_s{seed}{self.prof.variant if searched else ''}"
        path = self.cache / f"row_{key}.json"
        if path.is_file():
            log(f"  {key}: cached")
            return read_json(path)
        log(f"  {key}: start")
        if method == "tp-magnitude":
            out, pruned = self.tp_row(budget)
        else:
            out, pruned = self.search_row(key, method, budget, seed)
        log(
            f"  {key}: searched in {out['search_seconds']:.0f}s (val acc {out['val_top1']:.4f}, "
            f"MACs x{out['search_ratios'].get('macs', float('nan')):.3f}); fine-tuning"
        )
        out.update(self.finetune_and_test(pruned, seed))
        out.update(
            {"key": key, "model": self.name, "method": method, "budget": budget, "seed": seed}
        )
        self.save_pruned(pruned, key)
        write_json(path, out)
        log(
            f"  {key}: test acc {out['test_top1']:.4f} (baseline {self.info['test_top1']:.4f}), "
            f"MACs x{out['macs'] / self.info['macs']:.3f}"
        )
        return out


# ----------------------------------------------------------------------------- latency
def measure_latencies(
    prof: Profile, cache: Path, rows: list[dict[str, Any]], baselines: dict[str, ModelBench]
) -> dict[str, dict[str, float | None]]:
    """One consistent pass: batch-1 latency of every baseline and final model, torch (+ ORT)."""
    backends = [b for b in ("torch", "onnxruntime") if b in list_backends(available_only=True)]
    out: dict[str, dict[str, float | None]] = {}

    def lat(m: nn.Module, shape: tuple[int, ...]) -> dict[str, float | None]:
        res: dict[str, float | None] = {}
        for b in backends:
            try:
                c = measure_cost(
                    m.eval(),
                    shape,
                    latency=True,
                    backend=b,
                    batch_size=1,
                    threads=1,
                    warmup=10,
                    repeats=prof.final_lat_repeats,
                )
                res[b] = c.latency_ms
            except Exception as exc:  # noqa: BLE001
                log(f"    latency with {b} failed: {exc}")
                res[b] = None
        return res

    for name, mb in baselines.items():
        out[f"baseline_{name}"] = lat(mb.model, mb.shape)
    for r in rows:
        m = baselines[r["model"]].load_pruned(r["key"])
        out[r["key"]] = lat(m, baselines[r["model"]].shape)
    write_json(cache / "latency.json", out)
    return out


# ----------------------------------------------------------------------------- report
def _fmt_pm(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    vals = [
        v * scale for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))
    ]
    if not vals:
        return "n/a"
    mean = statistics.fmean(vals)
    if len(vals) == 1:
        return f"{mean:.{digits}f}"
    spread = (max(vals) - min(vals)) / 2
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def _mean(values: list[Any]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def aggregate(
    prof: Profile,
    rows: list[dict[str, Any]],
    baselines: dict[str, dict[str, Any]],
    lat: dict[str, dict[str, float | None]] | None,
) -> list[dict[str, Any]]:
    table = []
    for model, binfo in baselines.items():
        for budget in prof.budgets:
            for method in prof.methods:
                rs = [
                    r
                    for r in rows
                    if r["model"] == model and r["budget"] == budget and r["method"] == method
                ]
                if not rs:
                    continue
                lt = {"torch": [], "onnxruntime": []}
                for r in rs:
                    for b in lt:
                        base_l = (lat or {}).get(f"baseline_{model}", {}).get(b)
                        row_l = (lat or {}).get(r["key"], {}).get(b)
                        lt[b].append(row_l / base_l if base_l and row_l else None)
                tests = [r["test_top1"] for r in rs]
                table.append(
                    {
                        "model": model,
                        "width_mult": binfo["width_mult"],
                        "budget_max_macs": budget,
                        "method": method,
                        "seeds": ";".join(str(r["seed"]) for r in rs),
                        "n_seeds": len(rs),
                        "trials": rs[0]["trials"],
                        "macs_ratio": _mean([r["macs"] / binfo["macs"] for r in rs]),
                        "macs_reduction_pct": 100
                        * (1 - _mean([r["macs"] / binfo["macs"] for r in rs])),
                        "params_reduction_pct": 100
                        * (1 - _mean([r["params"] / binfo["params"] for r in rs])),
                        "latency_ratio_torch": _mean(lt["torch"]),
                        "latency_ratio_onnxruntime": _mean(lt["onnxruntime"]),
                        "val_top1_search": _mean([r["val_top1"] for r in rs]),
                        "test_top1": _mean(tests),
                        "test_top1_spread": (max(tests) - min(tests)) / 2
                        if len(tests) > 1
                        else 0.0,
                        "delta_test_pp": 100 * (_mean(tests) - binfo["test_top1"]),
                        "search_seconds": _mean([r["search_seconds"] for r in rs]),
                        "finetune_epochs": prof.ft_epochs,
                        "finetune_images": len(rs[0].get("ft", [])) or None,
                        "_rows": rs,
                        "_lat": lt,
                    }
                )
    return table


def write_report(
    prof: Profile,
    out: Path,
    cache: Path,
    rows: list[dict[str, Any]],
    benches: dict[str, ModelBench],
    lat: dict | None,
    *,
    smoke: bool,
    final: bool,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    tpath = cache / f"timing{prof.variant}.json"
    timing = read_json(tpath) if tpath.is_file() else {}
    baselines = {k: mb.info for k, mb in benches.items()}
    table = aggregate(prof, rows, baselines, lat)
    ft_images = {k: len(mb.ft_indices) for k, mb in benches.items()}
    prefix = "fashion_mnist" + prof.variant

    # -- CSVs
    cols = [
        "model",
        "width_mult",
        "budget_max_macs",
        "method",
        "seeds",
        "n_seeds",
        "trials",
        "macs_ratio",
        "macs_reduction_pct",
        "params_reduction_pct",
        "latency_ratio_torch",
        "latency_ratio_onnxruntime",
        "val_top1_search",
        "test_top1",
        "test_top1_spread",
        "delta_test_pp",
        "search_seconds",
        "finetune_epochs",
        "finetune_images",
        "cpu",
        "cores",
        "torch",
        "optuna",
        "iaprune",
    ]
    with open(out / f"{prefix}_results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for t in table:
            t = dict(
                t,
                finetune_images=ft_images[t["model"]],
                cpu=info["cpu"],
                cores=info["cores"],
                torch=info["torch"],
                optuna=info["optuna"],
                iaprune=info["iaprune"],
            )
            w.writerow({k: (round(v, 5) if isinstance(v, float) else v) for k, v in t.items()})
    run_cols = [
        "key",
        "model",
        "method",
        "budget",
        "seed",
        "trials",
        "best_trial",
        "val_top1",
        "test_top1",
        "macs",
        "params",
        "search_seconds",
        "finetune_seconds",
        "tp_steps",
    ]
    with open(out / f"{prefix}_runs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=run_cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)

    # -- search efficiency
    eff = []
    for r in rows:
        if r["method"] not in ("random", "tpe", "gp-bo"):
            continue
        best = None
        for i, h in enumerate(sorted(r["history"], key=lambda h: h["number"]), start=1):
            if h["feasible"] and h["value"] is not None:
                best = h["value"] if best is None else max(best, h["value"])
            eff.append(
                {
                    "model": r["model"],
                    "budget_max_macs": r["budget"],
                    "method": r["method"],
                    "seed": r["seed"],
                    "trial": i,
                    "value": h["value"],
                    "feasible": h["feasible"],
                    "best_feasible_so_far": best,
                }
            )
    with open(out / f"{prefix}_search_efficiency.csv", "w", newline="") as f:
        w = csv.DictWriter(
            f,
            fieldnames=[
                "model",
                "budget_max_macs",
                "method",
                "seed",
                "trial",
                "value",
                "feasible",
                "best_feasible_so_far",
            ],
        )
        w.writeheader()
        w.writerows(eff)
    _plot(eff, out / f"{prefix}_search_efficiency.png", prof)

    # -- markdown
    md = []
    title = "Fashion-MNIST benchmark" + (" (SMOKE: digits, tiny, not evidence)" if smoke else "")
    md.append(f"# {title}\n")
    status = "complete" if final else "PARTIAL (run still in progress or cut short)"
    md.append(f"Status: **{status}**; {len(rows)} method runs.  ")
    md.append(
        f"Machine: {info['cpu']}, {info['cores']} cores (torch threads {info['torch_threads']}), "
        f"no GPU.  "
    )
    md.append(
        f"Versions: python {info['python']}, torch {info['torch']}, optuna {info['optuna']}, "
        f"torch-pruning {info['torch_pruning']}, iaprune {info['iaprune']}; "
        "onnxruntime latency backend: "
        f"{'yes' if info['onnxruntime_backend'] else 'not available'}.  "
    )
    tot = timing.get("total_seconds")
    if tot:
        md.append(
            f"Total compute time (sum over invocations, incl. baselines): {tot / 60:.1f} min "
            f"({timing.get('invocations', 1)} invocation(s)).  "
        )
    md.append(f"Date: {time.strftime('%Y-%m-%d')}\n")
    md.append("## Setup\n")
    md.append(
        f"* Data: `{prof.dataset}` via `iaprune.data.create_dataset` "
        f"(padded to 32x32 for fashion-mnist), validation = 10 % of the training split "
        f"(seed 0), test = the official test split, used once per final model."
    )
    md.append(
        f"* Baselines: SGD + Nesterov, cosine LR {prof.baseline_lr}, batch {prof.batch_size}, "
        f"weight decay 5e-4, augmentation from the data loader; "
        + ", ".join(f"`{m}` width {w} for {e} epochs" for m, (w, e) in prof.models.items())
        + "."
    )
    md.append(
        f"* Budgets: `ObjectiveConfig(max_macs=b)` with b in {list(prof.budgets)} "
        "(fraction of the baseline's MACs kept)."
    )
    md.append(
        f"* Searches: {prof.trials} trials each (uniform: 1 bisected configuration), L1 filter "
        f"ranking, each trial = prune + BN recalibration on {prof.bn_batches} training batches + "
        f"validation accuracy on the first {prof.search_val_batches} x {prof.batch_size} "
        f"validation images. Random / TPE seed 0; GP-BO seeds {list(prof.gp_seeds)} "
        "(table: mean ± half-range)."
        + (
            f" Every search trial also takes {prof.trial_steps} SGD steps (lr {prof.trial_lr}, "
            "momentum 0.9) on the same augmented training batches before BN recalibration "
            "and validation (`--trial-steps`); uniform and torch-pruning rows do not search "
            "and are shared with the default run."
            if prof.trial_steps
            else ""
        )
    )
    md.append(
        f"* GP-BO latency-aware: `ObjectiveConfig(kind='weighted', w_latency={prof.w_latency}, "
        "max_macs=b)`, i.e. maximise val acc - "
        f"{prof.w_latency} x (torch batch-1, 1-thread latency ratio) subject to the same MACs "
        "budget: among configurations meeting the MACs budget it trades 1 point of accuracy "
        f"for {1 / prof.w_latency:.0f} points of measured latency."
    )
    md.append(
        "* torch-pruning reference: `tp.pruner.MagnitudePruner(global_pruning=True, "
        "importance=MagnitudeImportance(p=1), pruning_ratio=0.95, max_pruning_ratio=0.95, "
        "iterative_steps=100)`, final Linear ignored, stepped until "
        "`iaprune.cost.count_macs` ratio <= b (so it may undershoot b by one step)."
    )
    md.append(
        f"* Fine-tuning (every method, identical): {prof.ft_epochs} epoch(s) SGD + Nesterov, "
        f"cosine LR {prof.ft_lr}, batch {prof.batch_size}, on a fixed random subset of "
        + ", ".join(f"{n} training images ({m})" for m, n in ft_images.items())
        + " (seed 0), fine-tune seed = method seed."
    )
    md.append(
        f"* Latency: batch 1, 1 thread, warmup 10, median of {prof.final_lat_repeats} runs, "
        "all final models measured in one pass at the end, ratio to the baseline measured in "
        "the same pass. The machine was shared with other light jobs: treat latency ratios "
        "as +-5-10 %."
    )
    md.append(
        "* Search time = sum of trial durations stored in the study (resume-safe); for "
        "torch-pruning it is the pruning time.\n"
    )
    md.append("## Baselines\n")
    md.append("| model | width | epochs | params | MMACs | test acc | train time |")
    md.append("|---|---|---|---|---|---|---|")
    for m, b in baselines.items():
        md.append(
            f"| {m} | {b['width_mult']} | {b['epochs']} | {b['params']:,} | "
            f"{b['macs'] / 1e6:.2f} | {100 * b['test_top1']:.2f} % | "
            f"{b['train_seconds'] / 60:.1f} min |"
        )
    md.append("\n## Results\n")
    md.append(
        "Accuracies in %, Δ in percentage points vs the baseline. GP-BO rows: mean ± half-range "
        f"over seeds {list(prof.gp_seeds)}.\n"
    )
    ort = any(t["latency_ratio_onnxruntime"] is not None for t in table)
    hdr = (
        "| model | budget (MACs kept) | method | MACs red. | params red. | latency x (torch)"
        + (" | latency x (ORT)" if ort else "")
        + " | val acc (search) | test acc | Δ test | search time | trials | seed(s) |"
    )
    md.append(hdr)
    md.append("|" + "---|" * (hdr.count("|") - 1))
    for t in table:
        rs = t["_rows"]
        cells = [
            t["model"],
            f"{t['budget_max_macs']:g}",
            METHOD_LABEL[t["method"]],
            _fmt_pm([100 * (1 - r["macs"] / baselines[t["model"]]["macs"]) for r in rs], digits=1)
            + " %",
            _fmt_pm(
                [100 * (1 - r["params"] / baselines[t["model"]]["params"]) for r in rs], digits=1
            )
            + " %",
            _fmt_pm(t["_lat"]["torch"], digits=3),
        ]
        if ort:
            cells.append(_fmt_pm(t["_lat"]["onnxruntime"], digits=3))
        cells += [
            _fmt_pm([r["val_top1"] for r in rs], 100),
            _fmt_pm([r["test_top1"] for r in rs], 100),
            _fmt_pm([r["test_top1"] - baselines[t["model"]]["test_top1"] for r in rs], 100),
            _fmt_pm([r["search_seconds"] for r in rs], digits=0) + " s",
            str(t["trials"]) if t["method"] != "tp-magnitude" else "- (pruning steps)",
            t["seeds"],
        ]
        md.append("| " + " | ".join(cells) + " |")
    md.append("\n## Verdict (computed, not edited)\n")
    for model in baselines:
        for budget in prof.budgets:
            ts = {
                t["method"]: t
                for t in table
                if t["model"] == model and t["budget_max_macs"] == budget
            }
            if "gp-bo" not in ts:
                continue
            gp = ts["gp-bo"]
            others = {m: t for m, t in ts.items() if m not in ("gp-bo", "gp-bo-latency")}
            if not others:
                continue
            best_m, best = max(others.items(), key=lambda kv: kv[1]["test_top1"])
            diff = 100 * (gp["test_top1"] - best["test_top1"])
            spread = 100 * gp["test_top1_spread"]
            if diff > spread:
                verdict = "GP-BO beats every baseline"
            elif diff >= -spread:
                verdict = "GP-BO is within its seed spread of the best baseline (no clear win)"
            else:
                verdict = "GP-BO does NOT beat the best baseline"
            md.append(
                f"* {model} @ {budget:g} MACs: GP-BO {100 * gp['test_top1']:.2f} ± {spread:.2f} % "
                f"vs best baseline {METHOD_LABEL[best_m]} {100 * best['test_top1']:.2f} % "
                f"({diff:+.2f} pp): **{verdict}**."
            )
    md.append(
        "\nCaveats: tiny fine-tuning budget (numbers measure how good a pruned starting point "
        "each method finds, not converged accuracy); 2 GP seeds only; one seed for the other "
        "methods; width-scaled models for a 2-core CPU budget; test accuracy differences "
        "below ~0.3 pp are within the noise of a single 10k-image test split.\n"
    )
    md.append("## Files\n")
    md.append(
        f"* `{prefix}_results.md` / `.csv`: this table (CSV: one row per model x budget x method, "
        "GP-BO averaged over seeds with `test_top1_spread` = half-range)."
    )
    md.append(f"* `{prefix}_runs.csv`: every run (each seed separately).")
    md.append(
        f"* `{prefix}_search_efficiency.csv` / `.png`: best feasible validation objective vs "
        "trial number for random / TPE / GP-BO."
    )
    (out / f"{prefix}_results.md").write_text("\n".join(md) + "\n")
    write_json(
        out / f"{prefix}_env.json",
        {"machine": info, "profile": prof.__dict__ | {"models": prof.models}},
    )


def _plot(eff: list[dict[str, Any]], path: Path, prof: Profile) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(e["model"], e["budget_max_macs"]) for e in eff}, key=lambda p: (p[0], -p[1]))
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    colors = {"random": "tab:gray", "tpe": "tab:orange", "gp-bo": "tab:blue"}
    for ax, (model, budget) in zip(axes[0], panels, strict=True):
        for method, seed in sorted(
            {
                (e["method"], e["seed"])
                for e in eff
                if e["model"] == model and e["budget_max_macs"] == budget
            }
        ):
            pts = [
                e
                for e in eff
                if e["model"] == model
                and e["budget_max_macs"] == budget
                and e["method"] == method
                and e["seed"] == seed
            ]
            xs = [p["trial"] for p in pts]
            ys = [
                100 * p["best_feasible_so_far"]
                if p["best_feasible_so_far"] is not None
                else float("nan")
                for p in pts
            ]
            ax.plot(
                xs,
                ys,
                color=colors[method],
                ls="-" if seed == 0 else "--",
                label=f"{method} s{seed}",
            )
        ax.set_title(f"{model}, MACs <= {budget:g}")
        ax.set_xlabel("trial")
        ax.set_ylabel("best feasible val acc (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--smoke", action="store_true", help="tiny digits run of the same code path")
    p.add_argument(
        "--out", type=Path, default=None, help="results folder (default benchmarks/results)"
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="cache folder (default benchmarks/.cache/fashion_mnist, smoke: OUT/.cache)",
    )
    p.add_argument("--trials", type=int, default=None, help="override the trials per search")
    p.add_argument("--models", nargs="*", default=None, help="subset of the models")
    p.add_argument("--no-final-latency", action="store_true", help="skip the final latency pass")
    p.add_argument(
        "--trial-steps",
        type=int,
        default=0,
        help="SGD steps per search trial (results get a _ts<N> suffix; baselines are shared)",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="fetch Fashion-MNIST from the official mirror (md5-checked) if it is not installed",
    )
    p.add_argument(
        "--trust-cache",
        action="store_true",
        help="unpickle whole-module model caches written by older versions (runs their code)",
    )
    args = p.parse_args(argv)

    prof = SMOKE if args.smoke else FULL
    prof = replace(prof, trust_cache=args.trust_cache)
    if args.download:
        prof = replace(prof, download=True)
    if args.trial_steps:
        prof = replace(prof, trial_steps=args.trial_steps)
    if args.trials:
        prof = replace(prof, trials=args.trials)
    if args.models:
        prof = replace(prof, models={m: prof.models[m] for m in args.models})
    out = args.out or (HERE / "results")
    cache = args.cache or ((out / ".cache") if args.smoke else HERE / ".cache" / "fashion_mnist")
    cache.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    log(f"benchmark {'SMOKE' if args.smoke else 'FULL'}: out={out} cache={cache}")

    timing_path = cache / f"timing{prof.variant}.json"
    timing = (
        read_json(timing_path)
        if timing_path.is_file()
        else {"total_seconds": 0.0, "invocations": 0}
    )
    timing["invocations"] += 1
    prior = timing["total_seconds"]

    def save_timing() -> None:
        timing["total_seconds"] = prior + (time.perf_counter() - T0)
        write_json(timing_path, timing)

    benches: dict[str, ModelBench] = {}
    rows: list[dict[str, Any]] = []
    for name in prof.models:
        mb = ModelBench(name, prof, cache)
        benches[name] = mb
        save_timing()
        for budget in prof.budgets:
            for method in prof.methods:
                seeds = prof.gp_seeds if method == "gp-bo" else (0,)
                for seed in seeds:
                    rows.append(mb.row(method, budget, seed))
                    save_timing()
                    write_report(
                        prof, out, cache, rows, benches, None, smoke=args.smoke, final=False
                    )
    lat = None
    if not args.no_final_latency:
        log("final latency pass over every model")
        lat = measure_latencies(prof, cache, rows, benches)
    save_timing()
    write_report(prof, out, cache, rows, benches, lat, smoke=args.smoke, final=True)
    log(f"done: {out / 'fashion_mnist_results.md'} (total {timing['total_seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
