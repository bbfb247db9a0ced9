"""The report's tables, each a :class:`~iaprune.reports.blocks.Table` of formatted cells."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from iaprune.pareto import pareto_front
from iaprune.reports.blocks import Table
from iaprune.reports.formats import (
    MISSING,
    _is_number,
    budget_notes,
    fmt_accuracy,
    fmt_count,
    fmt_loss,
    fmt_ms,
    fmt_percent,
    fmt_ratio,
    fmt_seconds,
    fmt_signed,
    fmt_value,
)
from iaprune.reports.rundata import RunData

SUMMARY_HEADERS = ("metric", "baseline", "pruned", "reduction")


def summary_table(report: Mapping[str, Any]) -> Table:
    """Baseline vs pruned accuracy and costs, as in the console table.

    The ``reduction`` column holds fractions removed as percentages (negative: the pruned
    model is larger or slower); the accuracy row holds the signed accuracy change instead.
    """
    base, pruned = report["baseline"], report["pruned"]
    red = report.get("reduction", {})
    rows = [
        (
            "top-1 accuracy",
            fmt_accuracy(base.get("accuracy")),
            fmt_accuracy(pruned.get("accuracy")),
            fmt_signed(report.get("accuracy_change")),
        )
    ]
    if "top5" in base or "top5" in pruned:
        change = pruned["top5"] - base["top5"] if "top5" in base and "top5" in pruned else None
        rows.append(
            (
                "top-5 accuracy",
                fmt_accuracy(base.get("top5")),
                fmt_accuracy(pruned.get("top5")),
                fmt_signed(change),
            )
        )
    for label, key, red_key in (
        ("MACs", "macs", "macs"),
        ("FLOPs", "flops", "macs"),
        ("params", "params", "params"),
        ("activation bytes", "activation_bytes", "activation_bytes"),
    ):
        if key in base or key in pruned:
            rows.append(
                (
                    label,
                    fmt_count(base.get(key)),
                    fmt_count(pruned.get(key)),
                    fmt_percent(red.get(red_key)),
                )
            )
    if base.get("latency_ms") is not None or pruned.get("latency_ms") is not None:
        rows.append(
            (
                "latency (ms)",
                fmt_ms(base.get("latency_ms")),
                fmt_ms(pruned.get("latency_ms")),
                fmt_percent(red.get("latency")),
            )
        )
        rows.append(
            (
                "latency spread (ms)",
                fmt_ms(base.get("latency_spread_ms")),
                fmt_ms(pruned.get("latency_spread_ms")),
                MISSING,
            )
        )
    check = report.get("latency_check")
    if check:
        r = check["ratio"]
        note = " (wide: noisy timing)" if check.get("flagged") else ""
        rows.append(
            (
                f"latency ratio, {100 * r['confidence']:.0f} % interval",
                MISSING,
                f"{r['value']:.3f} [{r['low']:.3f}, {r['high']:.3f}]{note}",
                MISSING,
            )
        )
    rows.extend((budget, MISSING, outcome, MISSING) for budget, outcome in budget_notes(report))
    split = report.get("accuracy_split", "test")
    return Table(
        SUMMARY_HEADERS,
        rows,
        caption=f"Accuracy on the {split} split; reduction = fraction of the baseline removed.",
    )


def channels_table(channels: Mapping[str, Sequence[int]]) -> Table:
    """Original and kept filters per channel group."""
    rows = [
        (
            name,
            fmt_count(original),
            fmt_count(kept),
            fmt_percent(kept / original if original else None),
        )
        for name, (original, kept) in channels.items()
    ]
    total_o = sum(o for o, _ in channels.values())
    total_k = sum(k for _, k in channels.values())
    if rows:
        rows.append(
            ("total", fmt_count(total_o), fmt_count(total_k), fmt_percent(total_k / total_o))
        )
    return Table(("group", "original", "kept", "kept %"), rows)


def kv_table(items: Iterable[tuple[str, Any]]) -> Table:
    return Table(("setting", "value"), [(k, fmt_value(v)) for k, v in items], align=("l", "l"))


def search_table(search: Mapping[str, Any]) -> Table:
    """The search settings and outcome (sampler, trials, best trial, ...)."""
    labels = {
        "objective": "objective",
        "budgets": "budgets",
        "sampler": "sampler",
        "importance": "importance criterion",
        "trials": "trials",
        "best_trial": "chosen trial",
        "best_value": "best objective value",
        "val_accuracy": "validation accuracy of chosen trial",
        "seconds": "search time (s)",
        "seed": "seed",
    }
    formats: dict[str, Callable[[Any], str]] = {
        "budgets": lambda b: ", ".join(f"{k} <= {v:g}" for k, v in b.items()) or "none",
        "best_value": lambda v: fmt_accuracy(v) if _is_number(v) else fmt_value(v),
        "val_accuracy": fmt_accuracy,
        "seconds": fmt_seconds,
    }
    rows = [
        (label, formats.get(key, fmt_value)(search[key]))
        for key, label in labels.items()
        if key in search
    ]
    rows += [(k, fmt_value(v)) for k, v in search.items() if k not in labels]
    return Table(("setting", "value"), rows, align=("l", "l"))


RATIO_LABELS = {
    "macs": "MACs",
    "params": "params",
    "activation_bytes": "activation",
    "latency": "latency",
}


def trials_table(data: RunData) -> Table:
    """One row per trial: objective, validation accuracy, cost ratios, feasibility, front."""
    ratio_keys = [
        k for k in RATIO_LABELS if any(k in (r.get("ratios") or {}) for r in data.history)
    ]
    has_latency = any(_is_number(r.get("latency_ms")) for r in data.history)
    on_front = {p.number for p in pareto_front(data.trial_points("macs"))}
    headers: tuple[str, ...] = ("trial", "objective", "val accuracy")
    headers += tuple(f"{RATIO_LABELS[k]} ratio" for k in ratio_keys)
    headers += ("latency (ms)",) if has_latency else ()
    headers += ("feasible", "note")
    rows = []
    for r in data.history:
        number = int(r["number"])
        notes = []
        if number == data.best_trial:
            notes.append("chosen")
        if number in on_front:
            notes.append("on MACs front")
        value = r.get("value")
        row: tuple[str, ...] = (
            str(number),
            fmt_accuracy(value) if _is_number(value) else MISSING,
            fmt_accuracy(r.get("accuracy")),
        )
        row += tuple(fmt_ratio((r.get("ratios") or {}).get(k)) for k in ratio_keys)
        row += (fmt_ms(r.get("latency_ms")),) if has_latency else ()
        row += ("yes" if r.get("feasible", True) else "no", ", ".join(notes))
        rows.append(row)
    return Table(
        headers,
        rows,
        align=("r",) * (len(headers) - 2) + ("l", "l"),
        caption="Accuracy on the validation split; ratios = candidate cost / baseline cost.",
    )


PARETO_SKIP = ("keep", "value", "constraints")


def pareto_table(pareto: Sequence[Mapping[str, Any]], best_trial: int | None = None) -> Table:
    """report.json's ``pareto`` list, one row per non-dominated trial.

    Rows are search-history rows or ``{number, accuracy, macs_ratio | latency_ms, ...}``;
    the ``ratios`` mapping is spread into one column per cost, per-group ``keep`` counts
    and the objective ``value`` (the accuracy again) are left out, other scalars shown.
    """
    flat: list[dict[str, Any]] = []
    for row in pareto:
        out: dict[str, Any] = {}
        for key, value in row.items():
            if key == "ratios" and isinstance(value, Mapping):
                out.update({f"{k}_ratio": v for k, v in value.items()})
            elif key not in PARETO_SKIP and not isinstance(value, Mapping | list):
                out[key] = value
        flat.append(out)
    found: list[str] = []
    for row in flat:
        found += [k for k in row if k not in found]
    first = ["number", "accuracy", "cost", *(f"{k}_ratio" for k in RATIO_LABELS), "latency_ms"]
    keys = [k for k in first if k in found] + [k for k in found if k not in first]

    def cell(key: str, value: Any) -> str:
        if value is None:
            return MISSING
        if not _is_number(value) or key == "number":
            return fmt_value(value)
        if "accuracy" in key or "top1" in key:
            return fmt_accuracy(value)
        if key.endswith("_ms"):
            return fmt_ms(value)
        if key.endswith("ratio"):
            return fmt_ratio(value)
        return fmt_value(value)

    def header(key: str) -> str:
        if key.endswith("_ratio"):
            return f"{RATIO_LABELS.get(key[: -len('_ratio')], key[: -len('_ratio')])} ratio"
        labels = {"number": "trial", "latency_ms": "latency (ms)", "cost": "pareto cost"}
        return labels.get(key, key.replace("_", " "))

    rows = [
        tuple(cell(k, row.get(k)) for k in keys)
        + (("chosen" if row.get("number") == best_trial else ""),)
        for row in flat
    ]
    return Table((*map(header, keys), "note"), rows, align=("r",) * len(keys) + ("l",))


def finetune_table(epochs: Sequence[Mapping[str, Any]]) -> Table:
    """Train loss, validation top-1 and loss per fine-tuning epoch."""
    rows = [
        (
            str(e.get("epoch", i + 1)),
            fmt_loss(e.get("train_loss")),
            fmt_accuracy(e.get("val_top1")),
            fmt_loss(e.get("val_loss")),
        )
        for i, e in enumerate(epochs)
    ]
    return Table(("epoch", "train loss", "val top-1", "val loss"), rows)
