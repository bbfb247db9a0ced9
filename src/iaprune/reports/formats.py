"""Number formats shared by every renderer (console, HTML, Markdown, benchmark tables).

Accuracies to 4 decimals, counts with thousands separators, reductions as percentages with
one decimal, latencies in ms to 3 decimals: the same report.json value shows the same
digits everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeGuard

MISSING = "-"


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def fmt_accuracy(value: float | None) -> str:
    """Top-1 / top-5 accuracy as a fraction with 4 decimals (``0.7047``)."""
    return MISSING if value is None else f"{value:.4f}"


def fmt_signed(value: float | None) -> str:
    """A signed accuracy difference with 4 decimals (``+0.0111``)."""
    return MISSING if value is None else f"{value:+.4f}"


def fmt_count(value: float | None) -> str:
    """A count (MACs, parameters, bytes) with thousands separators (``392,320``)."""
    return MISSING if value is None else f"{value:,.0f}"


def fmt_percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal (``0.583 -> 58.3%``)."""
    return MISSING if value is None else f"{value:.1%}"


def fmt_ms(value: float | None) -> str:
    """Milliseconds with 3 decimals (``0.898``)."""
    return MISSING if value is None else f"{value:.3f}"


def fmt_ratio(value: float | None) -> str:
    """A cost ratio (candidate / original) with 3 decimals (``0.417``)."""
    return MISSING if value is None else f"{value:.3f}"


def fmt_loss(value: float | None) -> str:
    """A loss with 4 decimals (``1.8253``)."""
    return MISSING if value is None else f"{value:.4f}"


def fmt_seconds(value: float | None) -> str:
    """Seconds with 2 decimals (``9.94``)."""
    return MISSING if value is None else f"{value:.2f}"


def fmt_value(value: Any) -> str:
    """Any JSON value for key / value tables: floats to 6 significant digits, lists by x."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={fmt_value(v)}" for k, v in value.items()) or MISSING
    if isinstance(value, list | tuple):
        return " x ".join(fmt_value(v) for v in value) or MISSING
    return str(value)


def budget_notes(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(budget, outcome)`` of every latency budget of ``report``, for the renderers.

    The outcome is the pruned model's measured upper bound against the budget, and for a
    budget the search projected onto, the chosen model's predicted and measured latency
    at search time (``search.latency_fit``).
    """
    check = report.get("latency_check") or {}
    notes = []
    met = "met" if check.get("meets_budget") else "NOT met"
    if "budget_ratio" in check:
        r = check["ratio"]
        notes.append(
            (
                f"latency budget {check['budget_ratio']:g} of the baseline",
                f"ratio {r['value']:.3f}, upper bound {r['high']:.3f}: {met}",
            )
        )
    if "budget_ms" in check:
        p = check["pruned_ms"]
        notes.append(
            (f"latency budget {check['budget_ms']:g} ms", f"{p['high']:.3f} ms upper bound: {met}")
        )
    fit = (report.get("search") or {}).get("latency_fit")
    if fit:
        tries = len(fit.get("attempts", []))
        notes.append(
            (
                f"search: {fit['key']} of the chosen widths",
                f"predicted {fit['predicted']:.4g}, measured {fit['measured']:.4g} "
                f"(upper bound {fit['measured_high']:.4g}) after {tries - 1} re-projections",
            )
        )
    return notes
