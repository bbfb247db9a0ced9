"""What a rendered report says, independent of its format (HTML or Markdown).

:class:`RunData` loads a finished run directory; :func:`build_sections` turns it into
:class:`Section` objects made of :class:`Table`, :class:`Figure` and :class:`Text` blocks,
which :mod:`iaprune.reports.markdown` and :mod:`iaprune.reports.html` only lay out. Every
number goes through :mod:`iaprune.reports.formats`, so both formats (and the console table
of :func:`iaprune.reports.print_table`) show the same digits of the same report.json value.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from iaprune.pareto import TrialPoint, pareto_front
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

__all__ = ["RunData", "Section", "Table", "Figure", "Text", "TrialPoint", "build_sections"]


def objective_series(data: RunData) -> tuple[str, list[tuple[int, float, bool]]]:
    """Label and ``(trial number, objective value, feasible)`` rows of the search history.

    Trials without a scalar objective value (a multi-objective study) are shown by their
    validation accuracy.
    """
    values = [(r, r.get("value")) for r in data.history]
    if any(_is_number(v) for _, v in values):
        kind = data.objective
        label = {
            "constrained": "objective (validation accuracy)",
            "weighted": "objective (accuracy - weighted cost)",
            "pareto": "validation accuracy",
        }.get(kind, f"{kind} objective")
        key = "value"
    else:
        label, key = "validation accuracy", "accuracy"
    rows = [
        (int(r["number"]), float(r[key]), bool(r.get("feasible", True)))
        for r in data.history
        if _is_number(r.get(key))
    ]
    return label, rows


# -- blocks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A table of already formatted cells; ``align`` holds ``"l"`` or ``"r"`` per column."""

    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]
    align: tuple[str, ...] = ()  # "l" or "r" per column
    caption: str | None = None

    def alignment(self) -> tuple[str, ...]:
        """Column alignment: the given one, else the first column left and others right."""
        if self.align:
            return self.align
        return ("l",) + ("r",) * (len(self.headers) - 1)


@dataclass(frozen=True)
class Figure:
    """A plot, by the name :func:`iaprune.reports.plots.render_plot` knows it under."""

    name: str
    title: str
    caption: str


@dataclass(frozen=True)
class Text:
    """A paragraph of plain text."""

    text: str


Block = Table | Figure | Text


@dataclass(frozen=True)
class Section:
    """A titled part of the report."""

    title: str
    blocks: list[Block]


# -- sections --------------------------------------------------------------------------------

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


def _kv_table(items: Iterable[tuple[str, Any]]) -> Table:
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


def planned_figures(data: RunData) -> list[Figure]:
    """The plots this run's data supports, in report order."""
    figures = []
    if data.report.get("channels"):
        figures.append(
            Figure(
                "channels",
                "Filters per channel group",
                "Original (grey) and kept (blue) filters of every channel group.",
            )
        )
    if objective_series(data)[1]:
        figures.append(
            Figure(
                "history",
                "Optimisation history",
                "Objective value per trial with the best feasible value so far; "
                "infeasible trials (over budget) are marked with a red x.",
            )
        )
    if data.trial_points("macs"):
        figures.append(
            Figure(
                "pareto_macs",
                "Validation accuracy vs MACs ratio",
                "Every trial; the non-dominated front is highlighted and the chosen trial starred.",
            )
        )
    if data.trial_points("latency_ms"):
        figures.append(
            Figure(
                "pareto_latency",
                "Validation accuracy vs latency",
                "Every trial with a measured latency; the non-dominated front is "
                "highlighted and the chosen trial starred.",
            )
        )
    if any(_is_number(e.get("train_loss")) for e in data.epochs):
        figures.append(
            Figure(
                "finetune",
                "Fine-tuning",
                "Training loss and validation top-1 per epoch.",
            )
        )
    return figures


def build_sections(data: RunData, figures: Collection[str] | None = None) -> list[Section]:
    """The report's sections; ``figures`` limits the plots to those names (None: all)."""
    report = data.report
    planned = {f.name: f for f in planned_figures(data)}
    if figures is not None:
        planned = {k: v for k, v in planned.items() if k in figures}

    def fig(name: str) -> list[Block]:
        return [planned[name]] if name in planned else []

    sections = [Section("Summary", [summary_table(report)])]
    if report.get("macs_convention"):
        sections[0].blocks.append(Text(str(report["macs_convention"]) + "."))
    if report.get("channels"):
        sections.append(Section("Channels", [*fig("channels"), channels_table(report["channels"])]))
    search_blocks: list[Block] = []
    if report.get("search"):
        search_blocks.append(search_table(report["search"]))
    search_blocks += fig("history") + fig("pareto_macs") + fig("pareto_latency")
    if data.history:
        search_blocks.append(trials_table(data))
    if report.get("pareto"):
        search_blocks += [
            Text("Non-dominated feasible trials found by the search (report.json, pareto):"),
            pareto_table(report["pareto"], data.best_trial),
        ]
    if search_blocks:
        sections.append(Section("Search", search_blocks))
    tune_blocks: list[Block] = []
    if report.get("finetune"):
        tune_blocks.append(_kv_table(report["finetune"].items()))
    tune_blocks += fig("finetune")
    if data.epochs:
        tune_blocks.append(finetune_table(data.epochs))
    if tune_blocks:
        sections.append(Section("Fine-tuning", tune_blocks))
    environment = dict(report.get("environment") or {})
    env_items = list(environment.items())
    env_items += [
        (f"latency {k}", v)
        for k, v in (report.get("latency_env") or {}).items()
        if environment.get(k) != v
    ]
    if "seconds" in report:
        env_items.append(("run time (s)", fmt_seconds(report["seconds"])))
    if env_items:
        sections.append(Section("Environment", [_kv_table(env_items)]))
    return sections


def report_title(report: Mapping[str, Any]) -> str:
    """``iaprune report: vgg16 on digits``."""
    return f"iaprune report: {report.get('model', '?')} on {report.get('dataset', '?')}"
