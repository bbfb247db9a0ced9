"""``iaprune export RUN_DIR --format onnx|torchscript``: write, verify and time the model."""

from __future__ import annotations

import argparse
import json

from iaprune.export.verify import FORMATS, default_export_path, export_model


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommand."""
    p = sub.add_parser(
        "export",
        help="export a run's pruned model to ONNX or TorchScript, verify it against torch, "
        "print its latency",
    )
    p.add_argument("run_dir")
    p.add_argument("--format", dest="fmt", default="onnx", choices=FORMATS)
    p.add_argument("-o", "--output", help="file to write (default RUN_DIR/pruned.<ext>)")
    p.add_argument("--baseline", action="store_true", help="export the unpruned model instead")
    p.add_argument("--batch-size", type=int, default=1, help="batch used to verify and time")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads while timing")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max abs output difference")
    p.add_argument("--repeats", type=int, default=30, help="timed runs (median reported)")
    p.set_defaults(func=run)


def run(a: argparse.Namespace) -> int:
    """Export, print the path, the max abs difference and the latency (also as JSON)."""
    from iaprune.pipeline import Session

    session = Session.open(a.run_dir)
    model = session.baseline() if a.baseline else session.load_pruned()
    path = a.output or default_export_path(a.run_dir, a.fmt)
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
    (res.path.parent / f"{res.path.name}.json").write_text(json.dumps(summary, indent=2))
    return 0
