"""How well does the latency lookup table predict the latency of pruned models?

For each model (CIFAR VGG16 and ResNet34 at 32x32, random weights) and backend:

1. build a :class:`iaprune.cost.lut.LatencyTable` (batch 1, 1 thread by default), with
   ``--calibrate`` extra random pruned models timed to fit the calibration scale;
2. draw ``--configs`` seeded random pruned configurations (one keep-ratio per channel
   group, uniform in ``[--min-ratio, 1]``), prune the model for real and time it with
   the same backend and settings;
3. compare with three predictions: the table without calibration (offset only), the
   calibrated table, and a MACs proxy ``full latency * MACs ratio`` for reference.

Writes ``benchmarks/results/lut_error_<backend>_<machine tag>.csv`` (one row per model and
configuration) and ``.md`` (median / max absolute percentage error and the environment).

Usage::

    python benchmarks/lut_error.py                      # vgg16 + resnet34, torch backend
    python benchmarks/lut_error.py --backend onnxruntime  # if that backend is registered
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from iaprune.cost import LatencyTable, TimingSettings, count_macs, device_name, get_backend
from iaprune.models import create_model
from iaprune.pruning import PruningSpec, apply_spec, find_groups

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Row:
    """One pruned configuration of one model."""

    model: str
    config: int
    mean_keep_ratio: float
    macs_ratio: float
    measured_ms: float
    measured_median_ms: float
    measured_min_ms: float
    measured_spread_ms: float
    predicted_ms: float
    predicted_calibrated_ms: float
    predicted_fitted_ms: float
    predicted_macs_ms: float

    @staticmethod
    def ape(pred: float, meas: float) -> float:
        """Absolute percentage error of ``pred`` against ``meas``."""
        return abs(pred - meas) / meas * 100.0

    def as_dict(self) -> dict[str, object]:
        """CSV row."""
        return {
            "model": self.model,
            "config": self.config,
            "mean_keep_ratio": f"{self.mean_keep_ratio:.3f}",
            "macs_ratio": f"{self.macs_ratio:.4f}",
            "measured_ms": f"{self.measured_ms:.4f}",
            "measured_median_ms": f"{self.measured_median_ms:.4f}",
            "measured_min_ms": f"{self.measured_min_ms:.4f}",
            "measured_iqr_ms": f"{self.measured_spread_ms:.4f}",
            "predicted_ms": f"{self.predicted_ms:.4f}",
            "abs_pct_error": f"{self.ape(self.predicted_ms, self.measured_ms):.2f}",
            "predicted_calibrated_ms": f"{self.predicted_calibrated_ms:.4f}",
            "abs_pct_error_calibrated": (
                f"{self.ape(self.predicted_calibrated_ms, self.measured_ms):.2f}"
            ),
            "predicted_fitted_ms": f"{self.predicted_fitted_ms:.4f}",
            "abs_pct_error_fitted": f"{self.ape(self.predicted_fitted_ms, self.measured_ms):.2f}",
            "predicted_macs_proxy_ms": f"{self.predicted_macs_ms:.4f}",
            "abs_pct_error_macs_proxy": f"{self.ape(self.predicted_macs_ms, self.measured_ms):.2f}",
        }


def machine_tag() -> str:
    """A short file-name tag for this machine: CPU model and core count."""
    cpu = re.sub(r"[^a-z0-9]+", "-", device_name("cpu").lower()).strip("-")
    return f"{cpu}-{os.cpu_count()}c"


def loadavg() -> str:
    """1/5/15-minute load averages, or 'n/a'."""
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def run_model(
    name: str, args: argparse.Namespace, backend: str
) -> tuple[list[Row], LatencyTable, dict[str, object]]:
    """Build the table for one model and compare predictions with measurements."""
    torch.manual_seed(args.seed)
    model = create_model(name, num_classes=10, width_mult=args.width_mult).eval()
    shape = (3, args.input_size, args.input_size)
    example = torch.zeros((1, *shape))
    groups = find_groups(model, example)
    original = {g.name: g.channels for g in groups}
    timing = TimingSettings(
        backend=backend,
        batch_size=args.batch_size,
        threads=args.threads,
        warmup=args.warmup,
        repeats=args.repeats,
    )

    start = time.perf_counter()
    table = LatencyTable.build(
        model,
        shape,
        groups,
        timing.with_(repeats=args.table_repeats),
        grid=args.grid,
        rounds=args.rounds,
        statistic=args.statistic,
        calibrate=args.calibrate,
        seed=args.seed,
    )
    build_s = time.perf_counter() - start
    full_sum = table.layer_sum({})
    plain_offset = table.full_ms - full_sum  # what the uncalibrated table would use
    fit_a, fit_b = free_fit(table)
    base_macs = count_macs(model, shape)

    timer = get_backend(backend)
    rng = random.Random(args.seed)
    rows: list[Row] = []
    start = time.perf_counter()
    for i in range(args.configs):
        keep = {
            g.name: max(1, round(g.channels * rng.uniform(args.min_ratio, 1.0))) for g in groups
        }
        pruned = apply_spec(model, example, PruningSpec(keep=keep, original=original))
        res = timer.measure(pruned, shape, timing)
        macs_ratio = count_macs(pruned, shape) / base_macs
        measured = res.median_ms if args.statistic == "median" else min(res.runs_ms)
        layer_sum = table.layer_sum(keep)
        rows.append(
            Row(
                model=name,
                config=i,
                mean_keep_ratio=statistics.fmean(keep[n] / c for n, c in original.items()),
                macs_ratio=macs_ratio,
                measured_ms=measured,
                measured_median_ms=res.median_ms,
                measured_min_ms=min(res.runs_ms),
                measured_spread_ms=res.spread_ms,
                predicted_ms=layer_sum + plain_offset,
                predicted_calibrated_ms=table.predict(keep),
                predicted_fitted_ms=fit_a * layer_sum + fit_b,
                predicted_macs_ms=table.full_ms * macs_ratio,
            )
        )
        print(
            f"  {name} config {i:2d}: measured {measured:8.3f} ms, "
            f"predicted {rows[-1].predicted_ms:8.3f} ms "
            f"({Row.ape(rows[-1].predicted_ms, measured):5.1f} %), "
            f"calibrated {rows[-1].predicted_calibrated_ms:8.3f} ms, "
            f"fitted {rows[-1].predicted_fitted_ms:8.3f} ms",
            flush=True,
        )
    full_again = timer.measure(model, shape, timing)
    info = {
        "build_s": build_s,
        "measure_s": time.perf_counter() - start,
        "groups": len(groups),
        "full_sum_ms": full_sum,
        "plain_offset_ms": plain_offset,
        "full_again_ms": full_again.median_ms,
    }
    return rows, table, info


def free_fit(table: LatencyTable) -> tuple[float, float]:
    """Least-squares ``measured = a * layer_sum + b`` over the full model and the calibration.

    Unlike the table's own calibration (a line through the full-model point), both
    coefficients are free; with no calibration points it is the plain table.
    """
    xs = [table.layer_sum({})] + [float(c["layer_sum_ms"]) for c in table.calibration]
    ys = [table.full_ms] + [float(c["measured_ms"]) for c in table.calibration]
    if len(xs) < 2:
        return 1.0, table.full_ms - xs[0]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    a = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return a, my - a * mx


def summarise(values: Sequence[float]) -> str:
    """``median / max`` of absolute percentage errors."""
    return f"{statistics.median(values):.1f} % / {max(values):.1f} %"


def write_results(
    backend: str,
    tag: str,
    results: list[tuple[str, list[Row], LatencyTable, dict[str, object]]],
    args: argparse.Namespace,
    load_before: str,
) -> tuple[Path, Path]:
    """Write the CSV and the markdown summary; return their paths."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"lut_error_{backend}_{tag}" + ("" if args.statistic == "median" else "_min")
    csv_path = RESULTS / f"{stem}.csv"
    md_path = RESULTS / f"{stem}.md"
    all_rows = [row for _, rows, _, _ in results for row in rows]
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(all_rows[0].as_dict()))
        writer.writeheader()
        for row in all_rows:
            writer.writerow(row.as_dict())

    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = "not installed"
    lines = [
        f"# Latency lookup table: prediction error ({backend} backend)",
        "",
        "Absolute percentage error |predicted - measured| / measured of the latency of",
        f"{args.configs} random pruned configurations per model (keep-ratio per channel group",
        f"uniform in [{args.min_ratio}, 1], seed {args.seed}), CIFAR models at "
        f"{args.input_size}x{args.input_size}, width x{args.width_mult}, random weights,",
        f"batch {args.batch_size}, {args.threads} thread(s). Measured latency: {args.statistic} of "
        f"{args.repeats} runs after {args.warmup} warm-up runs; the table uses the same",
        f"statistic (`statistic={args.statistic!r}`).",
        "",
        "* **table**: sum of interpolated per-layer entries + constant offset (the default).",
        f"* **calibrated**: the same with a scale fitted on {args.calibrate} other random pruned"
        " models (`calibrate=N`).",
        "* **fitted**: `a * layer sum + b`, both fitted by least squares on the full model and"
        " the calibration models.",
        "* **MACs proxy**: full-model latency x MACs ratio, for reference.",
        "",
        "| model | groups | table points | build | full model | offset | scale "
        "| table median / max | calibrated median / max | fitted median / max "
        "| MACs proxy median / max |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rows, table, info in results:
        errs = [Row.ape(r.predicted_ms, r.measured_ms) for r in rows]
        cal = [Row.ape(r.predicted_calibrated_ms, r.measured_ms) for r in rows]
        fit = [Row.ape(r.predicted_fitted_ms, r.measured_ms) for r in rows]
        macs = [Row.ape(r.predicted_macs_ms, r.measured_ms) for r in rows]
        lines.append(
            f"| {name} | {info['groups']} | {table.points} | {info['build_s']:.0f} s "
            f"| {table.full_ms:.2f} ms | {info['plain_offset_ms']:.2f} ms | {table.scale:.3f} "
            f"| {summarise(errs)} | {summarise(cal)} | {summarise(fit)} | {summarise(macs)} |"
        )
    lines += [
        "",
        "Unpruned model timed again after the configurations (drift check): "
        + ", ".join(
            f"{name} {table.full_ms:.2f} -> {info['full_again_ms']:.2f} ms"
            for name, _, table, info in results
        )
        + ".",
        "",
        "## Environment",
        "",
        f"* CPU: {device_name('cpu')} ({os.cpu_count()} cores visible), "
        f"{platform.machine()}, {platform.platform()}",
        f"* threads: {args.threads}; torch {torch.__version__}; onnxruntime {ort_version}; "
        f"python {platform.python_version()}",
        f"* table: grid {args.grid} widths per dimension, {args.table_repeats} timed runs per "
        f"point after {args.warmup} warm-up runs, {args.rounds} round(s)",
        f"* load average (1/5/15 min) before: {load_before}; after: {loadavg()}",
        f"* measured {time.strftime('%Y-%m-%d %H:%M %Z')}",
        "",
        "**Note:** on this 2-core machine any other job inflates the timings; the load averages",
        "above say whether one was running (a 1-minute load near 1 right after another job",
        "ended is that job's tail). Part of the error is noise of the *measured* latencies.",
        "",
    ]
    md_path.write_text("\n".join(lines), encoding="utf-8")
    return csv_path, md_path


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark for every requested backend."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["vgg16", "resnet34"])
    p.add_argument("--backends", nargs="+", default=["torch"])
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--grid", type=int, default=7)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--table-repeats", type=int, default=10)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--statistic", default="median", choices=("median", "min"))
    p.add_argument("--calibrate", type=int, default=5)
    p.add_argument("--configs", type=int, default=20)
    p.add_argument("--repeats", type=int, default=30, help="timed runs per pruned model")
    p.add_argument("--min-ratio", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default=None, help="machine tag in file names")
    args = p.parse_args(argv)
    tag = args.tag or machine_tag()
    for backend in args.backends:
        load_before = loadavg()
        results = []
        for name in args.models:
            print(f"{backend}: {name}", flush=True)
            rows, table, info = run_model(name, args, backend)
            results.append((name, rows, table, info))
            errs = [Row.ape(r.predicted_ms, r.measured_ms) for r in rows]
            print(
                f"  table {table.points} points in {info['build_s']:.0f} s; "
                f"median APE {statistics.median(errs):.1f} %",
                flush=True,
            )
        csv_path, md_path = write_results(backend, tag, results, args, load_before)
        print(f"wrote {csv_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
