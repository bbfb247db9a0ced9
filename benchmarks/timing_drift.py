"""How far does one A/B timing session's latency ratio drift in the next session?

The latency re-fit (:func:`iaprune.search.fit_measured`) accepts a model by the upper bound
of one interleaved A/B session against the unpruned model. This script times the same pair
(vgg16 width 0.25, 1 input channel, 32x32, against a uniform prune at ``--keep`` of every
layer's filters, rounded to multiples of 8 as ONNX Runtime prefers) in ``--sessions``
independent sessions of ``--seconds`` each on ONNX Runtime at batch 32 and 1 thread, the
latency-budget benchmark's target, and reports the
spread of the ratios between sessions and how often one session's interval misses the
mean of all. Weights are random: the latency of a dense convolution does not depend on
them. Results: ``OUT/timing_drift.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from common import loadavg, log, machine_info

from iaprune.cost import CompareSettings, compare_latency
from iaprune.models import create_model
from iaprune.pruning import Pruner
from iaprune.timing import TimingSettings

SHAPE = (1, 32, 32)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    p.add_argument("--out", type=Path, default=Path("results/timing_drift"))
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--keep", type=float, default=0.6, help="share of filters kept per layer")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    torch.manual_seed(0)
    base = create_model("vgg16", num_classes=10, in_channels=1, width_mult=0.25).eval()
    pruner = Pruner(base, torch.randn(1, *SHAPE))
    keep = {g.name: max(8, 8 * round(a.keep * g.channels / 8)) for g in pruner.groups}
    pruned = pruner.prune(keep).eval()
    timing = TimingSettings(batch_size=32, threads=1, backend="onnxruntime")
    sessions = []
    t0 = time.perf_counter()
    for n in range(a.sessions):
        cmp = compare_latency(
            {"baseline": base, "pruned": pruned},
            SHAPE,
            timing,
            CompareSettings(max_seconds=a.seconds),
        )
        r = cmp.ratios["pruned"]
        sessions.append({"ratio": r.value, "low": r.low, "high": r.high, "load": loadavg()})
        log(f"session {n}: ratio {r.value:.4f} [{r.low:.4f}, {r.high:.4f}]")
    ratios = [s["ratio"] for s in sessions]
    mean, sd = statistics.mean(ratios), statistics.stdev(ratios)
    half = statistics.mean([(s["high"] - s["low"]) / 2 for s in sessions])
    summary = {
        "mean_ratio": mean,
        "between_session_sd_relative": sd / mean,
        "mean_half_width_relative": half / mean,
        "sessions_missing_the_mean": sum(not s["low"] <= mean <= s["high"] for s in sessions),
        "wall_seconds": time.perf_counter() - t0,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    record = {"summary": summary, "sessions": sessions, "env": machine_info("cpu"), "args": vars(a)}
    (a.out / "timing_drift.json").write_text(json.dumps(record, indent=2, default=str))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
