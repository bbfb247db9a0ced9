"""``iaprune latency-table``: measure (or reuse) a per-layer latency lookup table."""

from __future__ import annotations

import argparse
import sys
import time
import warnings

from iaprune.cli._trust import add_trust_arg


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "latency-table",
        help="measure a per-layer latency lookup table to predict pruned latencies",
        description=(
            "Time every conv/linear layer of the unpruned model for a grid of input/output "
            "widths, and the whole model, and store the table as JSON. A stored table is "
            "reused when it was measured with the same backend, versions, device, threads, "
            "batch size, input shape and architecture; otherwise it is rebuilt."
        ),
    )
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default="vgg16",
        help="zoo name, 'module.path:factory', or a file saved with torch.save(model) "
        "(needs --trust-code)",
    )
    add_trust_arg(g)
    g.add_argument(
        "--width-mult", type=float, default=0.25, help="width of zoo models (as iaprune prune)"
    )
    g.add_argument("--in-channels", type=int, default=3, help="input image channels")
    g.add_argument("--num-classes", type=int, default=10)
    g.add_argument("--input-size", type=int, default=32, help="square input side H (= W)")
    t = p.add_argument_group("measurement")
    t.add_argument("--backend", default="torch", help="latency backend")
    t.add_argument("--batch-size", type=int, default=1, help="samples per timed forward pass")
    t.add_argument("--threads", type=int, default=1, help="intra-op threads while timing")
    t.add_argument("--device", default="cpu")
    t.add_argument("--grid", type=int, default=7, help="widths per dimension and layer")
    t.add_argument("--min-ratio", type=float, default=0.05, help="smallest grid width ratio")
    t.add_argument("--warmup", type=int, default=5, help="untimed runs per grid point")
    t.add_argument("--repeats", type=int, default=20, help="timed runs per grid point")
    t.add_argument(
        "--rounds", type=int, default=1, help="passes over the grid (keeps each point's minimum)"
    )
    t.add_argument(
        "--calibrate",
        type=int,
        default=8,
        help="random pruned models timed whole to fit the correction and measure its "
        "leave-one-out error (0: none; 'prune --latency predicted' uses 8)",
    )
    t.add_argument(
        "--round-to",
        type=int,
        default=None,
        metavar="N",
        help="channel step of the grid and the calibration models: the --round-to of the "
        "runs that will use the table (default: the backend's: 16 for onnxruntime, 32 for "
        "cuda, 8 otherwise); a run uses only a table on its own step",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--output",
        help="table file (required unless $IAPRUNE_LUT_DIR names a shared table directory, "
        "where the file is <fingerprint>-<settings>.json and 'iaprune prune --latency "
        "predicted' looks without --latency-table); replaced atomically, so it must be a "
        "regular file, and a file that is not a latency table is not overwritten unless "
        "--rebuild",
    )
    o.add_argument("--rebuild", action="store_true", help="measure even if a valid table exists")
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    """Build or reuse the table and print where it is, its size, build time and offset."""
    import torch

    from iaprune.cost.lut import (
        LatencyTable,
        LatencyTableWarning,
        default_table_path,
        load_or_build,
    )
    from iaprune.errors import IAPruneError
    from iaprune.fileio import check_output_file
    from iaprune.model_source import resolve_model
    from iaprune.pruning import find_groups
    from iaprune.timing import TimingSettings

    if a.output:
        check_output_file(a.output, what="latency table")
    if a.round_to is not None and a.round_to < 1:
        raise IAPruneError(f"--round-to must be >= 1, got {a.round_to}")

    recipe = resolve_model(
        a.model,
        num_classes=a.num_classes,
        in_channels=a.in_channels,
        width_mult=a.width_mult,
        trust_code=a.trust_code,
    )
    model = recipe.build().eval()
    shape = (a.in_channels, a.input_size, a.input_size)
    groups = find_groups(model, torch.zeros((1, *shape)))
    timing = TimingSettings(
        backend=a.backend,
        batch_size=a.batch_size,
        threads=a.threads,
        device=a.device,
        warmup=a.warmup,
        repeats=a.repeats,
    )
    options = {
        "grid": a.grid,
        "min_ratio": a.min_ratio,
        "rounds": a.rounds,
        "calibrate": a.calibrate,
        "multiple": a.round_to,
    }
    path = a.output or default_table_path(model, shape, timing, multiple=a.round_to)
    if path is None:
        raise IAPruneError(
            "name the table file with --output FILE (or set IAPRUNE_LUT_DIR to a shared "
            "table directory, where 'iaprune prune --latency predicted' also looks)"
        )
    start = time.perf_counter()
    if a.rebuild:
        table = LatencyTable.build(model, shape, groups, timing, **options)
        table.save(path)
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LatencyTableWarning)
            table = load_or_build(path, model, shape, groups, timing, **options)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
    elapsed = time.perf_counter() - start
    reused = not table.built_now
    m = table.meta
    print(f"latency table: {table.path}")
    print(
        f"entries: {len(table.layers)} layers, {table.points} measured points, "
        f"{len(table.group_channels)} channel groups, channel step {m.get('multiple', '?')}"
    )
    when = f"reused (built in {m['build_seconds']:.1f} s on {m.get('created')})"
    print(f"build time: {when if reused else f'{elapsed:.1f} s'}")
    print(
        f"full model: {table.full_ms:.3f} ms per batch of {m['batch_size']} "
        f"({m['backend']} {m['backend_version']}, {m['threads']} thread(s), {m['device']})"
    )
    print(
        f"offset: {table.offset_ms:.3f} ms, scale: {table.scale:.4f}, "
        f"{table.ms_per_gmac:.3f} ms per GMAC"
    )
    err = table.fit_error()
    if err:
        verdict = "within" if table.reliable() else "OUTSIDE"
        print(
            f"leave-one-out error on {err['n']} whole models: {err['median_pct']:.1f} % median, "
            f"{err['max_pct']:.1f} % max ({verdict} the 5 % / 15 % bound)"
        )
    else:
        print("leave-one-out error: unknown (use --calibrate 4 or more)")
    return 0
