"""``iaprune export RUN_DIR --format onnx|torchscript``: write, verify and time the model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from iaprune.cli._trust import add_trust_arg
from iaprune.errors import IAPruneError
from iaprune.export.verify import FORMATS, default_export_path, export_model
from iaprune.fileio import check_output_file, write_atomic
from iaprune.rundir import in_run_dir, lock_run_dir

SIDE_SUFFIX = ".json"
"""The summary written next to the export: ``<output>.json``."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "export",
        help="export a run's pruned model to ONNX or TorchScript, verify it against torch, "
        "print its latency",
        description=(
            "Write the model, reload it in its runtime, check its outputs against torch and "
            "time it. Besides the model file OUTPUT it writes OUTPUT.json (path, format, max "
            "abs difference, latency, environment). Inside a run directory only the export's "
            "own names (pruned.onnx, baseline.ts.pt, ...) may be written; an OUTPUT that is "
            "a run's file, a directory or a device is refused."
        ),
    )
    p.add_argument("run_dir")
    p.add_argument("--format", dest="fmt", default="onnx", choices=FORMATS)
    p.add_argument(
        "-o",
        "--output",
        help="file to write, plus OUTPUT.json beside it (default RUN_DIR/pruned.<ext>, "
        "with --baseline RUN_DIR/baseline.<ext>)",
    )
    p.add_argument("--baseline", action="store_true", help="export the unpruned model instead")
    p.add_argument("--batch-size", type=int, default=1, help="batch used to verify and time")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads while timing")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max abs output difference")
    p.add_argument("--repeats", type=int, default=30, help="timed runs (median reported)")
    add_trust_arg(p)
    p.set_defaults(func=run)


def output_paths(a: argparse.Namespace) -> tuple[Path, Path, Path | None]:
    """The export file, its ``.json`` side file and the run directory they are written in.

    Refused if either would clobber a run's file; a run directory written in is locked.
    """
    default = default_export_path(a.run_dir, a.fmt, baseline=a.baseline)
    path = Path(a.output).expanduser() if a.output else default
    side = path.with_name(path.name + SIDE_SUFFIX)
    runs = set()
    for target in (path, side):
        check_output_file(target, what="export output")
        run = in_run_dir(target)
        own = {default.name, default.name + SIDE_SUFFIX}
        if run is not None and (target.resolve() == run or target.name not in own):
            raise IAPruneError(
                f"refusing to write {target}: it is inside run directory {run}; "
                f"name a file outside it (or the default {default.name})"
            )
        if run is not None:
            runs.add(run)
    return path, side, runs.pop() if runs else None


def run(a: argparse.Namespace) -> int:
    """Export, print the path, the max abs difference and the latency (also as JSON)."""
    from iaprune.session import Session

    path, side, run_dir = output_paths(a)
    if run_dir is not None:
        lock_run_dir(run_dir)
    session = Session.open(a.run_dir, trust_code=a.trust_code)
    model = session.finished_baseline_model() if a.baseline else session.load_pruned()
    res = export_model(
        model,
        session.input_shape,
        path,
        a.fmt,
        batch_size=a.batch_size,
        threads=a.threads,
        tolerance=a.tolerance,
        repeats=a.repeats,
    )
    print(f"wrote {res.path}")
    print(f"max abs diff vs torch: {res.max_abs_diff:.3g} (tolerance {a.tolerance:g})")
    print(
        f"latency ({res.env['version']}, batch {a.batch_size}, {a.threads} thread(s)): "
        f"{res.latency_ms:.3f} ms median, IQR {res.latency_spread_ms:.3f} ms"
    )
    summary = {
        "path": str(res.path),
        "format": res.format,
        "max_abs_diff": res.max_abs_diff,
        "latency_ms": res.latency_ms,
        "latency_spread_ms": res.latency_spread_ms,
        "env": res.env,
    }
    try:
        write_atomic(side, lambda fh: json.dump(summary, fh, indent=2), what="export summary")
    except BaseException:  # no export without its summary (Ctrl-C, disk full)
        path.unlink(missing_ok=True)
        raise
    print(f"wrote {side}")
    return 0
