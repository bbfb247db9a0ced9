"""What a rendered report says, independent of its format (HTML or Markdown).

:class:`RunData` loads a finished run directory; :func:`build_sections` turns it into
:class:`Section` objects made of :class:`Table`, :class:`Figure` and :class:`Text` blocks,
which :mod:`iaprune.reports.markdown` and :mod:`iaprune.reports.html` only lay out. Every
number goes through :mod:`iaprune.reports.formats`, so both formats (and the console table
of :func:`iaprune.reports.print_table`) show the same digits of the same report.json value.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from iaprune.pareto import TrialPoint
from iaprune.reports.blocks import Block, Figure, Section, Table, Text
from iaprune.reports.formats import (
    _is_number,
    fmt_seconds,
)
from iaprune.reports.rundata import RunData
from iaprune.reports.tables import (
    channels_table,
    finetune_table,
    kv_table,
    pareto_table,
    search_table,
    summary_table,
    trials_table,
)

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


# -- sections --------------------------------------------------------------------------------


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
        tune_blocks.append(kv_table(report["finetune"].items()))
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
        sections.append(Section("Environment", [kv_table(env_items)]))
    return sections


def report_title(report: Mapping[str, Any]) -> str:
    """``iaprune report: vgg16 on digits``."""
    return f"iaprune report: {report.get('model', '?')} on {report.get('dataset', '?')}"
