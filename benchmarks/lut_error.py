"""How well does the latency table predict the latency of pruned models it has not seen?

For every backend, batch size and model (CIFAR VGG16 / ResNet34, random weights):

1. build a :class:`iaprune.cost.LatencyTable` (``--method``, default ``auto``: each layer
   timed inside random whole models from the runtime's per-node profile where the backend
   has one (ONNX Runtime), else as a stand-alone block, on a width grid), then
   ``--calibrate`` random pruned *whole* models timed to fit the correction
   ``scale * layer sum + ms_per_gmac * GMACs + offset`` (the table's default predictor;
   its leave-one-out error is recorded as ``fit_loo``);
2. draw ``--configs`` other random pruned configurations (``--sizes independent``:
   keep-ratio per channel group uniform in ``[--min-ratio, 1]``, models of about half
   the width; ``--sizes spread``: models of every size, as the calibration models are
   drawn, with another seed), seeded, rounded to ``--multiple`` (by default the
   backend's preferred multiple, the widths a search with the default ``--round-to``
   proposes; the table is built on the same step), prune them for real and time them all
   *interleaved* with the unpruned model (:func:`iaprune.cost.compare_latency`); a
   configuration's measured latency is its measured ratio to the unpruned model times the
   table's full-model latency, i.e. at the machine speed the table was timed at (a
   2-core machine shared with other jobs changes speed by 2-3x over minutes, which
   absolute milliseconds taken minutes apart cannot separate from prediction error);
3. compare with the table's prediction (``abs_pct_error``: the default predictor), the
   uncorrected layer sum plus the full-model offset, and ``full latency x MACs ratio``.

Results: ``benchmarks/results/lut_error_<backend>_<machine>[_<method>].csv`` (one row per
configuration) and ``.md`` (median / max error per model and batch, environment).
Finished cells are kept in ``benchmarks/.cache/lut_error/`` (tables and a JSON-lines
file), so an interrupted run resumes.

Usage::

    python benchmarks/lut_error.py                                   # the committed run
    python benchmarks/lut_error.py --cells vgg16:0.25:1 --configs 3 --out /tmp/lut  # smoke
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from common import Rows, cifar_model, latency_env, log, machine_tag

from iaprune.cost import (
    CompareSettings,
    LatencyTable,
    TimingSettings,
    compare_latency,
    count_macs,
    get_backend,
)
from iaprune.cost.lut import CALIBRATION_DRAW, aligned, calibration_keeps
from iaprune.pruning import Pruner

HERE = Path(__file__).resolve().parent
SHAPE = (3, 32, 32)
# model:width:batch cells of the committed run (batch 32 on width 0.5 only: time)
CELLS = (
    "vgg16:1.0:1",
    "resnet34:1.0:1",
    "vgg16:0.5:1",
    "resnet34:0.5:1",
    "vgg16:0.5:32",
    "resnet34:0.5:32",
)


def _how_timed(rows: list[dict], args: argparse.Namespace) -> str:
    """How the tables' grids were timed (the method each cell's table records)."""
    methods = sorted({str(r.get("method", "standalone")) for r in rows})
    if methods == ["profile"]:
        return (
            "inside the whole model: the runtime's per-node profile of 32 seeded random "
            "pruned models, each next to the unpruned one (cost/lut/profile.py)"
        )
    return (
        f"layer by layer ({', '.join(methods)}): {args.statistic} of {args.table_repeats} "
        f"runs per point after {args.warmup} warm-up runs"
    )


def table_variant(args: argparse.Namespace) -> str:
    """Suffix of a table on a non-default channel step ("" if none)."""
    step = f"_m{args.multiple}" if args.multiple else ""
    return step + (f"_t{args.table_multiple}" if args.table_multiple else "")


def variant(args: argparse.Namespace) -> str:
    """File and key suffix of a non-default channel step or configuration sizes ("" if none).

    The configurations' sizes do not enter the table's file: both draws use one table.
    """
    return table_variant(args) + ("_spread" if args.sizes == "spread" else "")


def configs(groups: list, args: argparse.Namespace, multiple: int) -> list[dict[str, int]]:
    """The seeded random configurations of a cell (not the calibration models' seed)."""
    if args.sizes == "spread":
        return calibration_keeps(groups, args.configs, args.min_ratio, args.seed + 999, multiple)
    rng = random.Random(args.seed + 1000)
    return [
        {
            g.name: aligned(g.channels * rng.uniform(args.min_ratio, 1.0), g.channels, multiple)
            for g in groups
        }
        for _ in range(args.configs)
    ]


def ape(pred: float, meas: float) -> float:
    """Absolute percentage error."""
    return abs(pred - meas) / meas * 100.0


def run_cell(backend: str, cell: str, args: argparse.Namespace, rows: Rows, cache: Path) -> None:
    """Build (or reload) the table of one cell and time its random configurations."""
    name, width, batch = cell.split(":")
    model = cifar_model(name, float(width), args.seed)
    pruner = Pruner(model, torch.zeros((1, *SHAPE)), importance="l1", seed=args.seed)
    timing = TimingSettings(
        backend=backend,
        batch_size=int(batch),
        threads=args.threads,
        warmup=args.warmup,
        repeats=args.table_repeats,
    )
    method = "" if args.method == "auto" else f"-{args.method}"  # auto: latency_ratio.py reads it
    multiple = args.multiple or get_backend(backend).preferred_multiple
    table_multiple = args.table_multiple or multiple
    path = cache / f"{backend}{method}-{name}-w{width}-b{batch}{table_variant(args)}.json"
    table = LatencyTable.load(path) if path.is_file() else None
    if table is not None and table.meta.get("calibration_draw") != CALIBRATION_DRAW:
        log(f"{backend} {cell}: the cached table drew its calibration models otherwise; rebuilding")
        table = None
    if table is None:
        log(f"{backend} {cell}: building table")
        table = LatencyTable.build(
            model,
            SHAPE,
            pruner.groups,
            timing,
            grid=args.grid,
            calibrate=args.calibrate,
            method=args.method,
            seed=args.seed,
            statistic=args.statistic,
            multiple=table_multiple,
        )
        table.save(path)
        log(f"  {table!r}; fit {table.fit_error()}; {table.meta['build_seconds']:.0f} s")
    base_macs = count_macs(model, SHAPE)
    plain_offset = table.full_ms - table.layer_sum({})
    keeps = configs(pruner.groups, args, multiple)
    if f"{backend}|{args.method}{variant(args)}|{cell}|0" in rows:
        return
    pruned = {f"c{i}": pruner.prune(keep) for i, keep in enumerate(keeps)}
    settings = CompareSettings(
        block=3,
        statistic=args.statistic,
        min_rounds=4,
        max_rounds=10,
        max_seconds=args.cell_seconds,
    )
    cmp = compare_latency({"unpruned": model, **pruned}, SHAPE, timing, settings)
    log(
        f"  timed {len(pruned)} configs interleaved with the unpruned model: {cmp.rounds} rounds, "
        f"{cmp.env['seconds']:.0f} s"
    )
    for i, keep in enumerate(keeps):
        ratio = cmp.ratios[f"c{i}"]
        measured = ratio.value * table.full_ms  # at the machine speed the table was timed at
        macs_ratio = count_macs(pruned[f"c{i}"], SHAPE) / base_macs
        predicted = table.predict(keep)
        key = f"{backend}|{args.method}{variant(args)}|{cell}|{i}"
        rows.add(
            {
                "key": key,
                "backend": backend,
                "method": table.meta.get("method", "standalone"),
                "model": name,
                "width_mult": float(width),
                "batch": int(batch),
                "config": i,
                "macs_ratio": round(macs_ratio, 4),
                "measured_ms": round(measured, 4),
                "measured_ratio": round(ratio.value, 4),
                "measured_ratio_low": round(ratio.low, 4),
                "measured_ratio_high": round(ratio.high, 4),
                "session_ms": round(cmp.latency[f"c{i}"].value, 4),
                "session_unpruned_ms": round(cmp.latency["unpruned"].value, 4),
                "predicted_ms": round(predicted, 4),
                "abs_pct_error": round(ape(predicted, measured), 2),
                "abs_pct_error_layer_sum": round(
                    ape(table.layer_sum(keep) + plain_offset, measured), 2
                ),
                "abs_pct_error_macs_proxy": round(ape(table.full_ms * macs_ratio, measured), 2),
                "full_ms": round(table.full_ms, 4),
                "fit_loo": table.fit_error(),
                "table_reliable": table.reliable(),
                "table_s": table.meta.get("build_seconds"),
                "rounds": cmp.rounds,
                "load_before": cmp.env["load_before"],
                "load_after": cmp.env["load_after"],
            }
        )
        log(
            f"  {key}: measured {measured:.3f} ms (ratio {ratio}), predicted {predicted:.3f} ms "
            f"({rows.rows[key]['abs_pct_error']:.1f} %)"
        )


def _how_drawn(args: argparse.Namespace) -> str:
    """How a cell's configurations were drawn, for the markdown summary."""
    table = args.table_multiple or "the same"
    step = f"widths rounded to {args.multiple or 'the backend multiple'}, table step {table}"
    if args.sizes == "spread":
        return (
            f"models of every size: typical keep-ratio stratified over [{args.min_ratio}, 1], "
            f"each group within x1.5 of it, seed {args.seed + 999}; {step}"
        )
    return f"keep-ratio per group uniform in [{args.min_ratio}, 1], seed {args.seed + 1000}; {step}"


def _load_range(rows: list[dict]) -> str:
    """``low-high`` of the load averages recorded around the cells' timing."""
    loads = [float(r[k]) for r in rows for k in ("load_before", "load_after") if k in r]
    return f"{min(loads):.2f}-{max(loads):.2f}" if loads else "not recorded"


def beyond_interval(row: dict) -> float:
    """How far (%) the prediction lies outside the measured ratio's 95 % interval (0: inside)."""
    pred = row["predicted_ms"] / row["full_ms"]
    low, high = row["measured_ratio_low"], row["measured_ratio_high"]
    if pred < low:
        return (low - pred) / low * 100.0
    return max(0.0, (pred - high) / high * 100.0)


def half_width(row: dict) -> float:
    """Relative half-width (%) of the measured ratio's 95 % interval."""
    r = row["measured_ratio"]
    return max(row["measured_ratio_high"] / r - 1.0, 1.0 - row["measured_ratio_low"] / r) * 100


def summary(values: Sequence[float]) -> str:
    """``median / max`` in percent."""
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


def write(backend: str, rows: list[dict], args: argparse.Namespace, out: Path, env: dict) -> None:
    """CSV (one row per configuration) and markdown summary of one backend."""
    suffix = ("" if args.method == "auto" else f"_{args.method}") + variant(args)
    stem = out / f"lut_error_{backend}_{args.tag or machine_tag()}{suffix}"
    fields = [
        "model",
        "width_mult",
        "batch",
        "config",
        "macs_ratio",
        "measured_ms",
        "measured_ratio",
        "measured_ratio_low",
        "measured_ratio_high",
        "session_ms",
        "session_unpruned_ms",
        "predicted_ms",
        "abs_pct_error",
        "abs_pct_error_layer_sum",
        "abs_pct_error_macs_proxy",
    ]
    with open(f"{stem}.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    cells: dict[tuple[str, float, int], list[dict]] = {}
    for r in rows:
        cells.setdefault((r["model"], r["width_mult"], r["batch"]), []).append(r)
    lines = [
        f"# Latency table: prediction error on unseen pruned models ({backend})",
        "",
        f"{args.configs} random pruned configurations per cell ({_how_drawn(args)}), "
        "CIFAR 3x32x32, random weights, "
        f"{args.threads} thread. Measured: every configuration timed interleaved with the "
        f"unpruned model in one process (per round: the {args.statistic} of 3 runs per "
        "model; 4-10 rounds); measured "
        "ms = measured ratio x the table's full-model latency (CSV: the ratio's 95 % "
        "interval, and the session's own milliseconds). Table: grid "
        f"{args.grid} widths per dimension, timed {_how_timed(rows, args)}, "
        f"correction fitted on {args.calibrate} "
        "other random whole models (timed interleaved with the unpruned one) + the "
        "unpruned one. Errors are absolute percentage errors, median / max, in %. "
        "*Measured interval*: half-width of the 95 % interval of the measured ratio (noise "
        "of the ground truth on this shared machine); *beyond interval*: how far the "
        "table's prediction lies outside that interval (0 = consistent with the measurement).",
        "",
        "| model | width | batch | full ms | **table (default)** | layer sum + offset "
        "| MACs proxy | fit leave-one-out | measured interval +- | table beyond interval "
        "| meets 5 / 15 % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (model, width, batch), rs in cells.items():
        fit = rs[0]["fit_loo"] or {}
        loo = f"{fit.get('median_pct', float('nan')):.1f} / {fit.get('max_pct', float('nan')):.1f}"
        errs = [r["abs_pct_error"] for r in rs]
        ok = statistics.median(errs) <= 5 and max(errs) <= 15
        lines.append(
            f"| {model} | {width:g} | {batch} | {rs[0]['full_ms']:.2f} | **{summary(errs)}** "
            f"| {summary([r['abs_pct_error_layer_sum'] for r in rs])} "
            f"| {summary([r['abs_pct_error_macs_proxy'] for r in rs])} | {loo} "
            f"| {summary([half_width(r) for r in rs])} "
            f"| {summary([beyond_interval(r) for r in rs])} | {'yes' if ok else 'no'} |"
        )
    lines += [
        "",
        "## Environment",
        "",
        *[f"* {k}: {v}" for k, v in env.items()],
        f"* load average (1 min) before and after each cell's timing: {_load_range(rows)}",
        *([f"* {args.note}"] if args.note else []),
        f"* rendered {time.strftime('%Y-%m-%d %H:%M %Z')}",
        "",
    ]
    Path(f"{stem}.md").write_text("\n".join(lines), encoding="utf-8")
    log(f"wrote {stem}.csv/.md")


def main(argv: Sequence[str] | None = None) -> int:
    """Run every backend and cell, resuming from the cache."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"])
    p.add_argument("--cells", nargs="+", default=list(CELLS), help="MODEL:WIDTH:BATCH")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--grid", type=int, default=4)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--table-repeats", type=int, default=5)
    p.add_argument("--calibrate", type=int, default=8)
    p.add_argument(
        "--method",
        default="auto",
        choices=("auto", "standalone", "profile"),
        help="how the table's grid is timed (LatencyTable.build)",
    )
    p.add_argument("--configs", type=int, default=20)
    p.add_argument(
        "--multiple",
        type=int,
        default=0,
        help="round the random configurations' widths to this multiple "
        "(0: the backend's preferred multiple, the search's default --round-to)",
    )
    p.add_argument(
        "--table-multiple",
        type=int,
        default=None,
        help="build the table on this channel step instead of --multiple (the "
        "configurations keep --multiple): how far a table on another step is off",
    )
    p.add_argument(
        "--sizes",
        default="independent",
        choices=("independent", "spread"),
        help="configurations: ratios drawn per group (models of about half the width) or "
        "models of every size (as the table's calibration models)",
    )
    p.add_argument("--min-ratio", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--statistic",
        default="min",
        choices=("min", "median"),
        help="of the timed runs, for the table and the measurements",
    )
    p.add_argument(
        "--cell-seconds",
        type=float,
        default=150.0,
        help="time limit of a cell's interleaved timing (after 4 rounds)",
    )
    p.add_argument("--tag", default=None, help="machine tag in file names")
    p.add_argument(
        "--note",
        default="",
        help="a line for the summary's environment (what else ran on the machine)",
    )
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cache = (
        args.out / ".cache" / "lut_error"
        if args.out != HERE / "results"
        else (HERE / ".cache" / "lut_error")
    )
    cache.mkdir(parents=True, exist_ok=True)
    rows = Rows(cache / "rows.jsonl")
    env = latency_env(args.threads)
    for backend in args.backends:
        for cell in args.cells:
            run_cell(backend, cell, args, rows, cache)
        done = [
            r
            for r in rows
            if r["key"].startswith(f"{backend}|{args.method}{variant(args)}|")
            and f"{r['model']}:{r['width_mult']}:{r['batch']}" in args.cells
        ]
        write(backend, done, args, args.out, env)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
