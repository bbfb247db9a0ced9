"""report.json and the console summary table."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from rich.table import Table

from iaprune.cost import CostReport
from iaprune.reports.formats import budget_notes

if TYPE_CHECKING:
    from iaprune.config import RunConfig
    from iaprune.search import SearchResult


def _side(test: dict[str, float], cost: CostReport) -> dict[str, Any]:
    out: dict[str, Any] = {
        "accuracy": test["top1"],
        "macs": cost.macs,
        "flops": cost.flops,
        "params": cost.params,
        "activation_bytes": cost.activation_bytes,
        "latency_ms": cost.latency_ms,
        "latency_spread_ms": cost.latency_spread_ms,
    }
    if "top5" in test:
        out["top5"] = test["top5"]
    return out


def build_report(
    config: RunConfig,
    result: SearchResult,
    *,
    run_dir: Path,
    round_to: int,
    base_test: dict[str, float],
    base_cost: CostReport,
    pruned_test: dict[str, float],
    pruned_cost: CostReport,
    seconds: float,
    latency_check: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report.json dictionary. Reductions are fractions removed (0.6 = 60% fewer).

    It takes the run's data (its config, search result, measurements), never the
    orchestrator, so the reports package sits below the pipeline. ``latency_check`` is
    the interleaved A/B comparison (ratio with interval, flags, latency budget) and is
    stored as ``report["latency_check"]``.
    """
    ratios = pruned_cost.ratio_to(base_cost)
    cfg = config
    return {
        "run_dir": str(run_dir),
        "model": cfg.model,
        "dataset": cfg.dataset,
        "accuracy_split": "test",
        "macs_convention": "MACs of conv and linear layers per sample; FLOPs = 2 x MACs",
        "baseline": _side(base_test, base_cost),
        "pruned": _side(pruned_test, pruned_cost),
        "reduction": {k: 1.0 - v for k, v in ratios.items()},
        "accuracy_change": pruned_test["top1"] - base_test["top1"],
        "channels": result.spec.channels(),
        "search": result.summary()
        | {
            "objective": cfg.search.objective.kind,
            "budgets": cfg.search.objective.budgets(),
            "importance": cfg.search.importance,
            "seed": cfg.search.seed,
            "round_to": round_to,
        },
        "finetune": {"epochs": cfg.finetune.epochs, "lr": cfg.finetune.lr},
        **({"pareto": result.pareto} if result.pareto else {}),
        "latency_env": pruned_cost.latency_env,
        **({"latency_check": latency_check} if latency_check else {}),
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "machine": platform.machine(),
        },
        "seconds": round(seconds, 2),
    }


def _fmt_int(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def print_table(report: dict[str, Any], console: Console | None = None) -> None:
    """Print baseline vs pruned accuracy and costs."""
    console = console or Console()
    base, pruned, red = report["baseline"], report["pruned"], report["reduction"]
    table = Table(title=f"iaprune: {report['model']} on {report['dataset']} (test split)")
    for col in ("", "baseline", "pruned", "reduction"):
        table.add_column(col, justify="right")
    table.add_row(
        "top-1 accuracy",
        f"{base['accuracy']:.4f}",
        f"{pruned['accuracy']:.4f}",
        f"{report['accuracy_change']:+.4f}",
    )
    table.add_row("MACs", _fmt_int(base["macs"]), _fmt_int(pruned["macs"]), f"{red['macs']:.1%}")
    table.add_row(
        "params", _fmt_int(base["params"]), _fmt_int(pruned["params"]), f"{red['params']:.1%}"
    )
    if base.get("latency_ms") is not None and "latency" in red:
        table.add_row(
            "latency (ms)",
            f"{base['latency_ms']:.3f}",
            f"{pruned['latency_ms']:.3f}",
            f"{red['latency']:.1%}",
        )
    console.print(table)
    check = report.get("latency_check")
    if check:
        r = check["ratio"]
        line = (
            f"latency ratio {r['value']:.3f} [{r['low']:.3f}, {r['high']:.3f}] "
            f"({100 * r['confidence']:.0f} % interval, {check['rounds']} interleaved rounds)"
        )
        if check.get("flagged"):
            line += f"; interval wider than +-{100 * check['tolerance']:.0f} %: noisy timing"
        console.print(line, soft_wrap=True)
    for budget, outcome in budget_notes(report):
        console.print(f"{budget}: {outcome}", soft_wrap=True)
    search = report["search"]
    console.print(
        f"search: {search['sampler']}, {search['trials']} trials, best trial "
        f"{search['best_trial']}, {search['seconds']:.1f} s"
        + (
            f" (finalists {search['finalist_seconds']:.1f} s)"
            if search.get("finalist_seconds")
            else ""
        )
    )
