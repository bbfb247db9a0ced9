"""At the same MACs budget, does a latency-aware search give a lower *measured* latency?

For each model (CIFAR VGG16 and ResNet34 at 32x32, random weights, seed 0), latency backend
(``torch`` eager, ``onnxruntime`` CPU) and batch size (1 and 64), one thread, four pruned
configurations that all meet the same MACs budget (``--budget``, a ratio of the unpruned
model's MACs) are timed for real next to the unpruned model:

* ``uniform``: one keep-ratio for every channel group, the largest meeting the budget
  (bisection, :func:`iaprune.search.study.uniform_ratio`), any channel count (round to 1);
* ``bo-macs``: GP-BO (:func:`iaprune.search.run_search`, ``--trials`` trials) maximising
  the accuracy proxy subject to ``MACs <= budget``, round to 1: a MACs-only search with no
  hardware knowledge;
* ``bo-macs-r``: the same with widths rounded to the backend's preferred multiple
  (:func:`iaprune.cost.latency.default_round_to`: torch 8, onnxruntime 16), to separate
  the effect of rounding from the effect of the latency term;
* ``bo-latency``: GP-BO maximising ``proxy - w * predicted latency ratio`` subject to
  ``MACs <= budget``, round to the backend's multiple; the latency is predicted by a
  per-layer :class:`iaprune.cost.lut.LatencyTable` of that backend and batch size
  (timing every trial at batch 64 would be too slow).

The MACs-only configurations do not depend on the backend or batch size, so they are
searched once per model (``bo-macs-r`` once per rounding multiple) and timed everywhere.
Every BO search starts from the uniform configuration of its own search space (enqueued
as trial 0), so a search can only improve on it by its own objective.

**Accuracy term.** Random weights make validation accuracy meaningless, so the searches
use a training-free proxy (:func:`retained_importance`): the mean over channel groups of
the share of the group's L1 filter importance that the kept filters retain (L1 keeps the
top-scoring filters). With random weights the filter scores are nearly equal, so the proxy
is close to the mean keep-ratio over groups; it rewards keeping channels, not accuracy.

**Widths.** VGG16 and ResNet34 at width x0.5 (32-256 channels) by default: at x0.25,
ResNet34's 16-wide groups could not be pruned at all when rounding to onnxruntime's
multiple of 16 (groups no wider than the multiple are reported in the notes).

Context (earlier measurements on this machine, not produced by this script): uniform L1
pruning of VGG16-CIFAR to a MACs ratio of 0.252 gave a latency ratio of 0.392 in torch at
batch 1 but 0.221 in ONNX Runtime at batch 64, and ONNX Runtime ran 63 or 65 channels about
2x slower per MAC than 64.

Latency tables are cached under ``benchmarks/.cache/latency_ratio/`` (smoke: ``OUT/.cache``)
and every search lives in an Optuna SQLite study there, so an interrupted run resumes; the
final timings are always taken afresh. Writes ``latency_ratio_<machine tag>.csv`` and
``.md`` to ``--out`` (default ``benchmarks/results``; ``--smoke`` adds ``_smoke``).

Usage::

    python benchmarks/latency_ratio.py                                # full run
    python benchmarks/latency_ratio.py --smoke --out /tmp/lr_smoke     # same code path, 1-1.5 min
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import random
import shlex
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
import torch
from lut_error import loadavg, machine_tag
from torch import nn

from iaprune.config import ObjectiveConfig, SearchConfig
from iaprune.cost import (
    CostModel,
    CostReport,
    LatencyResult,
    LatencyTable,
    StaticCostModel,
    TimingSettings,
    device_name,
    get_backend,
    list_backends,
    load_or_build,
    measure_cost,
    predicted_cost,
)
from iaprune.cost.latency import default_round_to
from iaprune.models import create_model
from iaprune.progress import set_progress
from iaprune.pruning import Pruner
from iaprune.rundir import sqlite_url
from iaprune.search import CandidateEvaluator, CandidateResult, SearchSpace, run_search
from iaprune.search.study import check_reachable, open_study, uniform_ratio

HERE = Path(__file__).resolve().parent
T0 = time.perf_counter()
INPUT_SHAPE = (3, 32, 32)


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """Everything that defines a run (written to the results header)."""

    models: tuple[tuple[str, float], ...]  # (name, width_mult)
    backends: tuple[str, ...]
    batches: tuple[int, ...]
    budget: float = 0.3
    trials: int = 40
    w_latency: float = 0.5
    threads: int = 1
    seed: int = 0
    min_ratio: float = 0.05
    grid: int = 4
    calibrate: int = 3
    lut_warmup: int = 2
    lut_repeats: int = 5
    lut_statistic: str = "min"  # robust to a shared machine; the search uses ratios only
    warmup: int = 3
    repeats: int = 30
    large_repeats: int = 10
    large_batch: int = 16
    rounds: int = 2

    def repeats_for(self, batch: int) -> int:
        """Timed runs of a final measurement: fewer for large batches."""
        return self.repeats if batch < self.large_batch else self.large_repeats


FULL = Settings(
    models=(("vgg16", 0.5), ("resnet34", 0.5)),
    backends=("torch", "onnxruntime"),
    batches=(1, 64),
)
SMOKE = replace(
    FULL,
    models=(("vgg16", 0.25), ("resnet34", 0.25)),
    batches=(1, 16),
    budget=0.5,
    trials=5,
    grid=2,
    calibrate=1,
    lut_warmup=1,
    lut_repeats=2,
    warmup=1,
    repeats=5,
    large_repeats=3,
    rounds=1,
)


def log(msg: str) -> None:
    """Timestamped progress line, flushed (long runs are followed through a log file)."""
    print(f"[{time.strftime('%H:%M:%S')} +{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


# ----------------------------------------------------------------------------- proxy
def retained_importance(pruner: Pruner, keep: Mapping[str, int]) -> float:
    """Training-free accuracy proxy: mean over groups of the L1 importance share kept.

    For every channel group, the kept filters are the ``keep[group]`` top-scoring ones
    (as :meth:`Pruner.spec` keeps them); their score sum is divided by the group's total.
    """
    shares = []
    for group in pruner.groups:
        scores = pruner.scores[group.name]
        k = int(keep.get(group.name, group.channels))
        shares.append(float(torch.topk(scores, k).values.sum() / scores.sum()))
    return statistics.fmean(shares)


class ProxyEvaluator(CandidateEvaluator):
    """A :class:`CandidateEvaluator` whose accuracy is :func:`retained_importance`.

    No data is used (random weights); costs are memoised per configuration because the
    bisection and the GP sampler revisit rounded widths.
    """

    def __init__(self, pruner: Pruner, cost_model: CostModel) -> None:
        super().__init__(pruner, cost_model, calibration=(), val_batches=())
        self._memo: dict[tuple[tuple[str, int], ...], tuple[CostReport, dict[str, float]]] = {}

    def costs(self, keep: Mapping[str, int]) -> tuple[CostReport, dict[str, float]]:
        """Costs and cost ratios of ``keep``, computed once per configuration."""
        key = tuple(sorted((name, int(k)) for name, k in keep.items()))
        if key not in self._memo:
            self._memo[key] = super().costs(keep)
        return self._memo[key]

    def __call__(self, keep: Mapping[str, int]) -> CandidateResult:
        """Proxy and costs of ``keep`` (no BN recalibration, no validation)."""
        cost, ratios = self.costs(keep)
        return CandidateResult(retained_importance(self.pruner, keep), cost, ratios)


# ----------------------------------------------------------------------------- per model
@dataclass
class Config:
    """One pruned configuration and how it was found."""

    name: str
    round_to: int
    keep: dict[str, int]
    proxy: float
    search_s: float = 0.0
    trials: int = 0


@dataclass(frozen=True)
class Row:
    """One timed configuration of one model on one backend and batch size.

    ``same_as`` names an earlier configuration of the cell with identical widths (timed
    once, so both rows carry the same measurement); empty when the widths are new.
    """

    model: str
    width_mult: float
    backend: str
    batch: int
    config: str
    round_to: int
    macs_ratio: float
    params_ratio: float
    proxy: float
    predicted_ms: float
    predicted_ratio: float
    measured_ms: float
    measured_iqr_ms: float
    latency_ratio: float
    same_as: str
    trials: int
    search_s: float
    keep: str

    def as_dict(self) -> dict[str, object]:
        """CSV row."""
        return {
            "model": self.model,
            "width_mult": self.width_mult,
            "backend": self.backend,
            "batch": self.batch,
            "config": self.config,
            "round_to": self.round_to,
            "macs_ratio": f"{self.macs_ratio:.4f}",
            "params_ratio": f"{self.params_ratio:.4f}",
            "proxy": f"{self.proxy:.4f}",
            "predicted_ms": f"{self.predicted_ms:.4f}",
            "predicted_latency_ratio": f"{self.predicted_ratio:.4f}",
            "measured_ms": f"{self.measured_ms:.4f}",
            "measured_iqr_ms": f"{self.measured_iqr_ms:.4f}",
            "latency_ratio": f"{self.latency_ratio:.4f}",
            "latency_over_macs_ratio": f"{self.latency_ratio / self.macs_ratio:.3f}",
            "same_widths_as": self.same_as,
            "trials": self.trials,
            "search_s": f"{self.search_s:.1f}",
            "keep": self.keep,
        }


@dataclass
class Timing:
    """Wall-clock seconds spent per phase of one model (for run-time estimates)."""

    tables: dict[str, float] = field(default_factory=dict)
    searches: dict[str, float] = field(default_factory=dict)
    measure: dict[str, float] = field(default_factory=dict)


class ModelBench:
    """One random-weight model, its pruner and every search and table of it."""

    def __init__(self, name: str, width: float, s: Settings, cache: Path) -> None:
        self.name, self.width, self.s, self.cache = name, width, s, cache
        torch.manual_seed(s.seed)
        self.model = create_model(name, num_classes=10, in_channels=3, width_mult=width).eval()
        self.example = torch.zeros((1, *INPUT_SHAPE))
        self.pruner = Pruner(self.model, self.example, importance="l1", seed=s.seed)
        self.groups = self.pruner.groups
        self.base = measure_cost(self.model, INPUT_SHAPE)
        self.static = ProxyEvaluator(self.pruner, StaticCostModel())
        self.storage = sqlite_url(cache / "studies.db")
        self.timing = Timing()
        self.notes: list[str] = []
        self._macs_configs: dict[str, Config] = {}
        self._pruned: dict[tuple[int, ...], tuple[nn.Module, CostReport]] = {}

    @property
    def tag(self) -> str:
        """``name-w<width>``: the model part of cache keys."""
        return f"{self.name}-w{self.width:g}"

    def space(self, round_to: int) -> SearchSpace:
        """The search space over this model's channel groups."""
        return SearchSpace.from_groups(self.groups, min_ratio=self.s.min_ratio, round_to=round_to)

    def search_config(self, key: str, objective: ObjectiveConfig, round_to: int) -> SearchConfig:
        """GP search settings of one study."""
        return SearchConfig(
            sampler="gp",
            trials=self.s.trials,
            seed=self.s.seed,
            importance="l1",
            min_ratio=self.s.min_ratio,
            round_to=round_to,
            study_name=key,
            objective=objective,
            space="free",  # the free space these results were measured with
            warm_start=False,
            rescore=0,
        )

    def widths(self, keep: Mapping[str, int]) -> tuple[int, ...]:
        """Kept widths in group order (missing groups at full width)."""
        return tuple(int(keep.get(g.name, g.channels)) for g in self.groups)

    def pruned(self, widths: tuple[int, ...]) -> tuple[nn.Module, CostReport]:
        """The physically pruned model with ``widths`` (group order) and its static costs."""
        if widths not in self._pruned:
            keep = {g.name: k for g, k in zip(self.groups, widths, strict=True)}
            model = self.pruner.prune(keep).eval()
            self._pruned[widths] = (model, measure_cost(model, INPUT_SHAPE))
        return self._pruned[widths]

    # -- configurations -----------------------------------------------------------------
    def uniform(self) -> Config:
        """One keep-ratio for all groups, the largest meeting the MACs budget (round to 1)."""
        if "uniform" not in self._macs_configs:
            start = time.perf_counter()
            space = self.space(1)
            cfg = self.search_config(
                f"{self.tag}-uniform", ObjectiveConfig(max_macs=self.s.budget), 1
            )
            check_reachable(self.static, space, cfg)
            keep = space.uniform(uniform_ratio(self.static, space, cfg))
            secs = time.perf_counter() - start
            self._macs_configs["uniform"] = Config(
                "uniform", 1, keep, retained_importance(self.pruner, keep), secs, 0
            )
            self.timing.searches["uniform"] = secs
        return self._macs_configs["uniform"]

    def macs_search(self, round_to: int) -> Config:
        """``bo-macs`` (round to 1) or ``bo-macs-r`` (round to ``round_to``); cached."""
        label = "bo-macs" if round_to == 1 else "bo-macs-r"
        key = f"{label}@{round_to}"
        if key not in self._macs_configs:
            objective = ObjectiveConfig(max_macs=self.s.budget)
            study = f"{self.tag}-b{self.s.budget:g}-s{self.s.seed}-{label}-r{round_to}"
            self._macs_configs[key] = self._search(
                label, study, self.static, self.space(round_to), objective
            )
        return self._macs_configs[key]

    def latency_search(self, backend: str, batch: int, table: LatencyTable) -> Config:
        """``bo-latency``: proxy minus ``w`` x predicted latency ratio, MACs-constrained."""
        round_to = default_round_to(backend)
        objective = ObjectiveConfig(
            kind="weighted", w_latency=self.s.w_latency, max_macs=self.s.budget
        )
        # the study depends on the table's numbers: a rebuilt table starts a new study
        digest = hashlib.sha256(json.dumps(table.meta, sort_keys=True).encode()).hexdigest()[:8]
        study = (
            f"{self.tag}-b{self.s.budget:g}-s{self.s.seed}-bo-latency-r{round_to}-{backend}"
            f"-b{batch}-w{self.s.w_latency:g}-{digest}"
        )
        evaluator = ProxyEvaluator(self.pruner, predicted_cost(table, INPUT_SHAPE))
        return self._search("bo-latency", study, evaluator, self.space(round_to), objective)

    def _search(
        self,
        label: str,
        study_name: str,
        evaluator: ProxyEvaluator,
        space: SearchSpace,
        objective: ObjectiveConfig,
    ) -> Config:
        """Run (or resume) one GP study whose trial 0 is the space's uniform configuration."""
        start = time.perf_counter()
        cfg = self.search_config(study_name, objective, space.round_to)
        study = open_study(cfg, storage=self.storage, resume=True)
        if not study.trials:
            check_reachable(evaluator, space, cfg)
            study.enqueue_trial(space.params_for(uniform_ratio(evaluator, space, cfg)))
        result = run_search(evaluator, space, cfg, storage=self.storage, resume=True)
        secs = time.perf_counter() - start
        self.timing.searches[study_name] = secs
        lat = result.ratios.get("latency")
        log(
            f"  {self.tag} {label} (round to {space.round_to}): {result.trials} trials in "
            f"{secs:.1f} s, best trial {result.best_trial}, proxy {result.accuracy:.4f}, "
            f"MACs x{result.ratios['macs']:.3f}"
            + ("" if lat is None else f", predicted latency x{lat:.3f}")
        )
        return Config(
            label,
            space.round_to,
            dict(result.spec.keep),
            result.accuracy,
            result.seconds,
            result.trials,
        )

    def table(self, backend: str, batch: int) -> LatencyTable:
        """Latency table of this model for one backend and batch size (cached on disk)."""
        s = self.s
        path = self.cache / (
            f"{self.tag}-{backend}-b{batch}-t{s.threads}-g{s.grid}-c{s.calibrate}"
            f"-r{s.lut_repeats}-{s.lut_statistic}.json"
        )
        start = time.perf_counter()
        table = load_or_build(
            path,
            self.model,
            INPUT_SHAPE,
            self.groups,
            TimingSettings(
                backend=backend,
                batch_size=batch,
                threads=s.threads,
                warmup=s.lut_warmup,
                repeats=s.lut_repeats,
            ),
            grid=s.grid,
            min_ratio=s.min_ratio,
            statistic=s.lut_statistic,
            calibrate=s.calibrate,
            seed=s.seed,
        )
        secs = time.perf_counter() - start
        self.timing.tables[f"{backend}-b{batch}"] = secs
        how = "built" if table.built_now else "reused"
        log(
            f"  {self.tag} table {backend} batch {batch}: {how} in {secs:.1f} s, "
            f"{table.points} points, full {table.full_ms:.2f} ms, offset {table.offset_ms:.2f} "
            f"ms, scale {table.scale:.3f}"
        )
        space = self.space(default_round_to(backend))
        fixed = [g.name for g in self.groups if space.lower(g) >= g.channels]
        if fixed and batch == self.s.batches[0]:
            self.notes.append(
                f"{self.tag}: {len(fixed)} of {len(self.groups)} channel groups are no wider than "
                f"{backend}'s multiple {space.round_to} and stay unpruned in its rounded searches"
            )
        least = table.predict(space.smallest())
        if least <= 0:
            note = (
                f"the {backend} batch {batch} table of {self.tag} predicts {least:.3f} ms for the "
                f"smallest allowed model (offset {table.offset_ms:.2f} ms, scale "
                f"{table.scale:.3f}): its bo-latency search may exploit a non-physical prediction"
            )
            self.notes.append(note)
            log(f"  WARNING: {note}")
        return table

    # -- timing -------------------------------------------------------------------------
    def measure_cell(self, backend: str, batch: int, table: LatencyTable) -> list[Row]:
        """Search bo-latency for this cell, then time every configuration for real.

        Configurations with identical widths (e.g. a search whose best trial is its
        uniform trial 0) are timed once and share the measurement.
        """
        round_to = default_round_to(backend)
        configs = [
            Config("unpruned", 1, {g.name: g.channels for g in self.groups}, 1.0),
            self.uniform(),
            self.macs_search(1),
            self.macs_search(round_to),
            self.latency_search(backend, batch, table),
        ]
        distinct: dict[tuple[int, ...], str] = {}  # widths -> first config with them
        for config in configs:
            distinct.setdefault(self.widths(config.keep), config.name)

        start = time.perf_counter()
        timing = TimingSettings(
            backend=backend,
            batch_size=batch,
            threads=self.s.threads,
            warmup=self.s.warmup,
            repeats=self.s.repeats_for(batch),
        )
        timer = get_backend(backend)
        best: dict[tuple[int, ...], LatencyResult] = {}
        for r in range(self.s.rounds):
            order = list(distinct)
            random.Random(self.s.seed * 1000 + r).shuffle(order)
            for widths in order:
                model = self.model if distinct[widths] == "unpruned" else self.pruned(widths)[0]
                res = timer.measure(model, INPUT_SHAPE, timing)
                if widths not in best or res.median_ms < best[widths].median_ms:
                    best[widths] = res
        self.timing.measure[f"{backend}-b{batch}"] = time.perf_counter() - start

        base_ms = best[self.widths(configs[0].keep)].median_ms
        rows = []
        for config in configs:
            widths = self.widths(config.keep)
            cost = self.base if config.name == "unpruned" else self.pruned(widths)[1]
            ratios = cost.ratio_to(self.base)
            predicted = table.predict(config.keep)
            res = best[widths]
            rows.append(
                Row(
                    model=self.name,
                    width_mult=self.width,
                    backend=backend,
                    batch=batch,
                    config=config.name,
                    round_to=config.round_to,
                    macs_ratio=ratios["macs"],
                    params_ratio=ratios["params"],
                    proxy=config.proxy,
                    predicted_ms=predicted,
                    predicted_ratio=predicted / table.full_ms,
                    measured_ms=res.median_ms,
                    measured_iqr_ms=res.spread_ms,
                    latency_ratio=res.median_ms / base_ms,
                    same_as="" if distinct[widths] == config.name else distinct[widths],
                    trials=config.trials,
                    search_s=config.search_s,
                    keep="/".join(map(str, widths)),
                )
            )
        lat, macs = rows[-1], rows[2]
        log(
            f"  {self.tag} {backend} batch {batch}: bo-latency {lat.measured_ms:.3f} ms "
            f"(MACs x{lat.macs_ratio:.3f}) vs bo-macs {macs.measured_ms:.3f} ms "
            f"(MACs x{macs.macs_ratio:.3f}): {pct(lat.measured_ms, macs.measured_ms)}"
        )
        return rows


# ----------------------------------------------------------------------------- output
def pct(value: float, ref: float) -> str:
    """Signed percentage difference of ``value`` against ``ref``."""
    return f"{(value - ref) / ref * 100:+.1f} %"


def versions() -> dict[str, str]:
    """Versions of the packages the numbers depend on."""
    out = {"torch": torch.__version__, "optuna": optuna.__version__}
    try:
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        out["onnxruntime"] = "not installed"
    out["python"] = platform.python_version()
    return out


def key_table(rows: Sequence[Row]) -> tuple[list[str], list[str]]:
    """Markdown rows of the key comparison and one verdict line per backend.

    A configuration whose widths equal an earlier one's shares its measurement; the table
    marks it ``= name``.
    """
    cells: dict[tuple[str, str, int], dict[str, Row]] = {}
    for row in rows:
        cells.setdefault((row.model, row.backend, row.batch), {})[row.config] = row
    lines = [
        "| model | backend | batch | unpruned ms | uniform ms (MACs x) | bo-macs ms (MACs x) "
        "| bo-macs-r ms (MACs x) | bo-latency ms (MACs x) | **bo-latency vs bo-macs** "
        "| bo-latency vs bo-macs-r |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    wins: dict[str, list[float]] = {}

    def cell(r: Row) -> str:
        same = f" = {r.same_as}" if r.same_as else ""
        return f"{r.measured_ms:.3f} ({r.macs_ratio:.3f}){same}"

    for (model, backend, batch), by in cells.items():
        lat, macs, macs_r = by["bo-latency"], by["bo-macs"], by["bo-macs-r"]
        wins.setdefault(backend, []).append((lat.measured_ms - macs.measured_ms) / macs.measured_ms)
        lines.append(
            f"| {model} | {backend} | {batch} | {by['unpruned'].measured_ms:.3f} "
            f"| {cell(by['uniform'])} | {cell(macs)} | {cell(macs_r)} | {cell(lat)} "
            f"| **{pct(lat.measured_ms, macs.measured_ms)}** "
            f"| {pct(lat.measured_ms, macs_r.measured_ms)} |"
        )
    verdicts = [
        f"* {backend}: bo-latency measured faster than bo-macs in "
        f"{sum(d < 0 for d in diffs)} of {len(diffs)} model/batch cells "
        f"(differences {', '.join(f'{100 * d:+.1f} %' for d in diffs)})."
        for backend, diffs in wins.items()
    ]
    return lines, verdicts


def write_results(
    out: Path,
    stem: str,
    rows: Sequence[Row],
    benches: Sequence[ModelBench],
    s: Settings,
    notes: Sequence[str],
    load_before: str,
) -> tuple[Path, Path]:
    """Write the CSV and the markdown report; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / f"{stem}.csv", out / f"{stem}.md"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0].as_dict()))
        writer.writeheader()
        for row in rows:
            writer.writerow(row.as_dict())

    v = versions()
    models = ", ".join(
        f"{b.name} width x{b.width:g} ({len(b.groups)} channel groups, "
        f"{b.base.macs / 1e6:.1f} M MACs, {b.base.params / 1e6:.2f} M params)"
        for b in benches
    )
    key, verdicts = key_table(rows)
    wall = time.perf_counter() - T0
    lines = [
        "# Latency ratio vs MACs ratio: MACs-only vs latency-aware search",
        "",
        f"Question: at the same MACs budget (<= {s.budget:g} of the unpruned model's MACs), does "
        "a latency-aware search give a lower *measured* latency than a MACs-only search, and "
        "how do latency ratios compare with MACs ratios?",
        "",
        f"* Models: {models}; CIFAR input {INPUT_SHAPE}, random weights (seed {s.seed}).",
        f"* Backends: {', '.join(s.backends)}; batch sizes {', '.join(map(str, s.batches))}; "
        f"{s.threads} thread(s).",
        "* **Accuracy term: a training-free proxy**, not accuracy: the mean over channel groups "
        "of the share of the group's L1 filter importance kept (L1 keeps the top-scoring "
        "filters). With random weights the scores are nearly equal, so the proxy is close to "
        "the mean keep-ratio over groups.",
        "* `uniform`: one keep-ratio for all groups, the largest meeting the budget "
        "(bisection), round to 1.",
        f"* `bo-macs`: GP-BO, {s.trials} trials, maximise proxy s.t. MACs <= budget, round to 1 "
        "(no hardware knowledge). `bo-macs-r`: the same, widths rounded to the backend's "
        "preferred multiple (torch 8, onnxruntime 16).",
        f"* `bo-latency`: GP-BO, {s.trials} trials, maximise proxy - {s.w_latency:g} x "
        "predicted latency ratio s.t. MACs <= budget, round to the backend's multiple; latency "
        "predicted by a per-layer latency table of that backend and batch size "
        f"(grid {s.grid} widths per dimension from {s.min_ratio:g} to 1, {s.lut_statistic} of "
        f"{s.lut_repeats} timed runs per point after {s.lut_warmup} warm-up runs, "
        f"{s.calibrate} calibration models).",
        "* Every BO study starts from its space's uniform configuration (trial 0); seeds fixed. "
        "The MACs-only configurations are searched once per model and timed on every "
        "backend and batch size.",
        f"* Measured latency: median of {s.repeats} runs (batch >= {s.large_batch}: "
        f"{s.large_repeats}) after {s.warmup} warm-up runs, the lowest median of {s.rounds} "
        "round(s) in shuffled order; latency ratio = measured / measured unpruned model in "
        "the same rounds. Configurations with identical widths are timed once and share the "
        "number (marked `= name`). Predicted = the latency table of that backend and batch.",
        "",
        "## Key result: measured latency at the same MACs budget",
        "",
        *key,
        "",
        *verdicts,
        "",
        "## All configurations",
        "",
        "| model | backend | batch | config | round | MACs x | params x | proxy "
        "| predicted ms (x) | measured ms (IQR) | latency x | latency x / MACs x "
        "| same widths as |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.backend} | {r.batch} | {r.config} | {r.round_to} "
            f"| {r.macs_ratio:.3f} | {r.params_ratio:.3f} | {r.proxy:.4f} "
            f"| {r.predicted_ms:.3f} ({r.predicted_ratio:.3f}) "
            f"| {r.measured_ms:.3f} ({r.measured_iqr_ms:.3f}) | {r.latency_ratio:.3f} "
            f"| {r.latency_ratio / r.macs_ratio:.2f} | {r.same_as or '-'} |"
        )
    lines += [
        "",
        "Kept widths per configuration are in the CSV (`keep`, channel groups in module "
        "order); full widths: "
        + "; ".join(f"{b.tag}: {'/'.join(str(g.channels) for g in b.groups)}" for b in benches)
        + ".",
        "",
        "## Time per phase (s)",
        "",
        "| model | latency tables | searches | final timing |",
        "|---|---|---|---|",
    ]
    for b in benches:
        t = b.timing
        lines.append(
            f"| {b.tag} | "
            + ", ".join(f"{k} {v:.0f}" for k, v in t.tables.items())
            + f" | {sum(t.searches.values()):.0f} ({len(t.searches)} searches) | "
            + ", ".join(f"{k} {v:.0f}" for k, v in t.measure.items())
            + " |"
        )
    lines += [
        "",
        "## Environment",
        "",
        f"* CPU: {device_name('cpu')} ({os.cpu_count()} cores visible), "
        f"{platform.machine()}, {platform.platform()}",
        f"* threads: {s.threads}; torch {v['torch']}; onnxruntime {v['onnxruntime']}; "
        f"optuna {v['optuna']}; python {v['python']}",
        f"* command: `{' '.join(shlex.quote(a) for a in ['python', *sys.argv])}`",
        f"* total wall time of this invocation: {wall:.0f} s ({wall / 60:.1f} min); tables and "
        "finished studies reused from the cache take no time",
        f"* load average (1/5/15 min) before: {load_before}; after: {loadavg()}",
        f"* measured {time.strftime('%Y-%m-%d %H:%M %Z')}",
        *[f"* note: {n}" for n in [*notes, *(n for b in benches for n in b.notes)]],
        "",
        "**Note:** the machine may be shared with other jobs; single measurements are noisy "
        "(the IQR column shows the spread), so differences of a few percent are not "
        "significant.",
        "",
    ]
    md_path.write_text("\n".join(lines), encoding="utf-8")
    return csv_path, md_path


# ----------------------------------------------------------------------------- main
def parse_models(
    specs: Sequence[str], default: Mapping[str, float]
) -> tuple[tuple[str, float], ...]:
    """``name`` or ``name:width`` items; a bare name takes its default width (else 1)."""
    out = []
    for spec in specs:
        name, _, width = spec.partition(":")
        out.append((name, float(width) if width else default.get(name, 1.0)))
    return tuple(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every model, backend and batch size; write the CSV and markdown report."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--smoke", action="store_true", help="small widths, few trials, tiny grid")
    p.add_argument("--out", type=Path, default=None, help="results folder")
    p.add_argument("--cache", type=Path, default=None, help="latency tables and Optuna studies")
    p.add_argument("--models", nargs="+", default=None, help="NAME or NAME:WIDTH_MULT")
    p.add_argument("--backends", nargs="+", default=None)
    p.add_argument("--batches", nargs="+", type=int, default=None)
    p.add_argument("--budget", type=float, default=None, help="MACs ratio budget (default 0.3)")
    p.add_argument("--trials", type=int, default=None, help="trials per BO search (default 40)")
    p.add_argument("--w-latency", type=float, default=None, help="latency weight (default 0.5)")
    p.add_argument("--grid", type=int, default=None, help="latency table points per dimension")
    p.add_argument("--rounds", type=int, default=None, help="final timing rounds")
    p.add_argument("--tag", default=None, help="machine tag in file names")
    args = p.parse_args(argv)

    s = SMOKE if args.smoke else FULL
    overrides: dict[str, Any] = {
        "backends": tuple(args.backends) if args.backends else None,
        "batches": tuple(args.batches) if args.batches else None,
        "budget": args.budget,
        "trials": args.trials,
        "w_latency": args.w_latency,
        "grid": args.grid,
        "rounds": args.rounds,
    }
    s = replace(s, **{k: v for k, v in overrides.items() if v is not None})
    if args.models:
        s = replace(s, models=parse_models(args.models, dict(s.models)))
    out = args.out or HERE / "results"
    cache = args.cache or (out / ".cache" if args.smoke else HERE / ".cache" / "latency_ratio")
    cache.mkdir(parents=True, exist_ok=True)
    stem = f"latency_ratio_{args.tag or machine_tag()}" + ("_smoke" if args.smoke else "")

    set_progress(False)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(s.threads)
    notes = []
    available = set(list_backends(available_only=True))
    backends = [b for b in s.backends if b in available]
    for b in sorted(set(s.backends) - available):
        notes.append(f"backend {b!r} is not available here and was skipped")
        log(f"skipping unavailable backend {b!r}")
    s = replace(s, backends=tuple(backends))
    load_before = loadavg()
    log(f"latency_ratio {'SMOKE' if args.smoke else 'FULL'}: {s}; out={out} cache={cache}")

    rows: list[Row] = []
    benches: list[ModelBench] = []
    for name, width in s.models:
        bench = ModelBench(name, width, s, cache)
        benches.append(bench)
        log(f"{bench.tag}: {len(bench.groups)} groups, {bench.base.macs / 1e6:.1f} M MACs")
        for backend in s.backends:
            for batch in s.batches:
                table = bench.table(backend, batch)
                rows += bench.measure_cell(backend, batch, table)
                write_results(out, stem, rows, benches, s, notes, load_before)
    csv_path, md_path = write_results(out, stem, rows, benches, s, notes, load_before)
    log(f"wrote {csv_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
