"""The report's plots as PNG bytes, drawn with matplotlib's Agg canvas.

matplotlib is optional (``pip install 'iaprune[plots]'``): it is imported on first use
through :func:`iaprune._imports.optional_import`, which raises
:class:`~iaprune.errors.MissingDependencyError` when it is absent. pyplot is never
imported, so drawing changes no global backend or figure state of the caller.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

from iaprune._imports import optional_import
from iaprune.pareto import TrialPoint, pareto_front
from iaprune.reports.content import RunData, objective_series

BASE_COLOR = "#c7ccd1"
KEPT_COLOR = "#2a6fb0"
FRONT_COLOR = "#e07b00"
BAD_COLOR = "#c0392b"
CHOSEN_COLOR = "#f2c500"
DPI = 110


def _matplotlib() -> tuple[ModuleType, ModuleType]:
    """matplotlib's ``figure`` and Agg canvas modules (raises MissingDependencyError)."""
    optional_import("matplotlib")
    return optional_import("matplotlib.figure"), optional_import("matplotlib.backends.backend_agg")


def _figure(width: float, height: float) -> Any:
    figure, agg = _matplotlib()
    fig = figure.Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    agg.FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def channels_plot(data: RunData) -> bytes:
    """Bar chart: original filters (grey) with the kept ones (blue) over them, per group."""
    channels = data.report["channels"]
    names = list(channels)
    original = [channels[n][0] for n in names]
    kept = [channels[n][1] for n in names]
    n = len(names)
    fig = _figure(min(max(6.0, 0.38 * n + 1.5), 18.0), 4.2)
    ax = fig.add_subplot()
    x = range(n)
    ax.bar(x, original, color=BASE_COLOR, label="original", width=0.8)
    ax.bar(x, kept, color=KEPT_COLOR, label="kept", width=0.55)
    fontsize = 8 if n <= 30 else 6
    ax.set_xticks(list(x), names, rotation=60, ha="right", fontsize=fontsize)
    if n <= 30:
        for i, (o, k) in enumerate(zip(original, kept, strict=True)):
            ax.annotate(
                f"{k / o:.0%}" if o else "",
                (i, o),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=6.5,
                color="#444444",
            )
    ax.set_ylabel("filters")
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylim(0, max(original) * 1.12 if original else 1)
    ax.set_title(f"Filters per channel group ({sum(kept):,} of {sum(original):,} kept)")
    ax.legend(loc="upper left", frameon=False)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return _png(fig)


def history_plot(data: RunData) -> bytes:
    """Objective value per trial, best feasible value so far, warm starts, infeasible and
    failed trials marked (:func:`history_figure`)."""
    return _png(history_figure(data))


def history_figure(data: RunData) -> Any:
    """The figure of :func:`history_plot`; trial numbers on an integer axis."""
    ticker = optional_import("matplotlib.ticker")
    label, rows = objective_series(data)
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    warm = {int(r["number"]) for r in data.history if r.get("warm_start")}
    ok = [(n, v) for n, v, f in rows if f and n not in warm]
    bad = [(n, v) for n, v, f in rows if not f]
    started = [(n, v) for n, v, f in rows if f and n in warm]
    if started:
        ax.scatter(
            *zip(*started, strict=True),
            color=KEPT_COLOR,
            marker="D",
            s=34,
            edgecolors="black",
            linewidths=0.6,
            label="warm start (heuristic)",
        )
    if ok:
        ax.scatter(*zip(*ok, strict=True), color=KEPT_COLOR, s=22, label="feasible trial")
    if bad:
        ax.scatter(
            *zip(*bad, strict=True), color=BAD_COLOR, marker="x", s=30, label="infeasible trial"
        )
    steps_x, steps_y, best = [], [], -math.inf
    for number, value, feasible in sorted(rows):
        if feasible and value > best:
            best = value
        if best > -math.inf:
            steps_x.append(number)
            steps_y.append(best)
    if steps_x:
        ax.step(steps_x, steps_y, where="post", color=FRONT_COLOR, lw=1.8, label="best so far")
    chosen = [(n, v) for n, v, _ in rows if n == data.best_trial]
    if chosen:
        ax.scatter(
            *zip(*chosen, strict=True),
            marker="*",
            s=220,
            color=CHOSEN_COLOR,
            edgecolors="black",
            linewidths=0.8,
            zorder=5,
            label=f"chosen (trial {data.best_trial})",
        )
    if data.failed:
        ax.scatter(
            data.failed,
            [0.0] * len(data.failed),
            marker="|",
            s=120,
            color=BAD_COLOR,
            transform=ax.get_xaxis_transform(),  # x in trials, y at the bottom of the axes
            clip_on=False,
            label="failed trial",
        )
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(label)
    ax.set_title("Optimisation history")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, frameon=False)
    return fig


def _pareto_plot(
    data: RunData, points: list[TrialPoint], *, xlabel: str, title: str, budget: float | None
) -> bytes:
    fig = _figure(7.0, 4.6)
    ax = fig.add_subplot()
    ok = [(p.cost, p.accuracy) for p in points if p.feasible]
    bad = [(p.cost, p.accuracy) for p in points if not p.feasible]
    if ok:
        ax.scatter(*zip(*ok, strict=True), color=KEPT_COLOR, s=22, alpha=0.8, label="trial")
    if bad:
        ax.scatter(
            *zip(*bad, strict=True),
            color=BAD_COLOR,
            marker="x",
            s=30,
            label="infeasible trial",
        )
    front = pareto_front(points)
    if front:
        ax.plot(
            [p.cost for p in front],
            [p.accuracy for p in front],
            drawstyle="steps-post",
            color=FRONT_COLOR,
            lw=1.5,
            zorder=3,
        )
        ax.scatter(
            [p.cost for p in front],
            [p.accuracy for p in front],
            s=60,
            facecolors="none",
            edgecolors=FRONT_COLOR,
            linewidths=1.6,
            zorder=4,
            label=f"feasible non-dominated front ({len(front)})",
        )
    chosen = [p for p in points if p.number == data.best_trial]
    if chosen:
        ax.scatter(
            [p.cost for p in chosen],
            [p.accuracy for p in chosen],
            marker="*",
            s=260,
            color=CHOSEN_COLOR,
            edgecolors="black",
            linewidths=0.8,
            zorder=6,
            label=f"chosen (trial {data.best_trial})",
        )
    if budget is not None:
        ax.axvline(budget, color="#555555", ls="--", lw=1, label=f"budget {budget:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, frameon=False)
    return _png(fig)


def pareto_macs_plot(data: RunData) -> bytes:
    """Validation accuracy vs MACs ratio of every trial, front and chosen trial marked."""
    return _pareto_plot(
        data,
        data.trial_points("macs"),
        xlabel="MACs ratio (candidate / baseline)",
        title="Validation accuracy vs MACs",
        budget=data.budgets.get("macs"),
    )


def pareto_latency_plot(data: RunData) -> bytes:
    """Validation accuracy vs measured latency of every trial."""
    return _pareto_plot(
        data,
        data.trial_points("latency_ms"),
        xlabel="latency (ms)",
        title="Validation accuracy vs latency",
        budget=data.budgets.get("latency_ms"),
    )


def finetune_plot(data: RunData) -> bytes:
    """Training loss (left axis) and validation top-1 (right axis) per epoch."""
    epochs = [e for e in data.epochs if isinstance(e.get("train_loss"), int | float)]
    xs = [int(e.get("epoch", i + 1)) for i, e in enumerate(epochs)]
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    (loss_line,) = ax.plot(
        xs, [e["train_loss"] for e in epochs], "o-", color=KEPT_COLOR, label="train loss"
    )
    lines = [loss_line]
    if any(isinstance(e.get("val_loss"), int | float) for e in epochs):
        (val_loss,) = ax.plot(
            xs,
            [e.get("val_loss", math.nan) for e in epochs],
            "s--",
            color=KEPT_COLOR,
            alpha=0.5,
            label="val loss",
        )
        lines.append(val_loss)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    top1 = [e.get("val_top1") for e in epochs]
    if any(isinstance(v, int | float) for v in top1):
        (acc_line,) = ax2.plot(
            xs,
            [math.nan if v is None else v for v in top1],
            "o-",
            color=FRONT_COLOR,
            label="val top-1",
        )
        lines.append(acc_line)
    ax2.set_ylabel("validation top-1")
    ax.set_xticks(xs if len(xs) <= 20 else xs[:: max(1, len(xs) // 10)])
    ax.set_title("Fine-tuning")
    ax.grid(alpha=0.3)
    ax.legend(lines, [ln.get_label() for ln in lines], loc="center right", fontsize=8)
    return _png(fig)


PLOTS: dict[str, Callable[[RunData], bytes]] = {
    "channels": channels_plot,
    "history": history_plot,
    "pareto_macs": pareto_macs_plot,
    "pareto_latency": pareto_latency_plot,
    "finetune": finetune_plot,
}


def require_matplotlib() -> None:
    """Raise :class:`~iaprune.errors.MissingDependencyError` when matplotlib is absent."""
    _matplotlib()


def render_plot(name: str, data: RunData) -> bytes:
    """The PNG bytes of plot ``name`` (a key of :data:`PLOTS`)."""
    return PLOTS[name](data)
