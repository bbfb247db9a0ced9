"""write_reports: report.html (self-contained) and report.md (+ plots/*.png) for a run."""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from iaprune.errors import IAPruneError, MissingDependencyError
from iaprune.reports.content import RunData, build_sections, planned_figures
from iaprune.reports.html import render_html
from iaprune.reports.markdown import render_markdown
from iaprune.reports.plots import render_plot, require_matplotlib
from iaprune.rundir import RunDir

log = logging.getLogger(__name__)

FORMATS = ("html", "md")
PLOT_DIR = "plots"


def draw_plots(data: RunData) -> tuple[dict[str, bytes], str | None]:
    """PNG bytes of every plot the run supports, and a note when they had to be skipped."""
    names = [f.name for f in planned_figures(data)]
    if not names:
        return {}, None
    try:
        require_matplotlib()
    except MissingDependencyError as exc:
        log.warning("report plots skipped: %s", exc)
        return {}, f"plots were skipped: {exc}"
    return {name: render_plot(name, data) for name in names}, None


def write_reports(
    run_dir: str | Path, *, formats: Collection[str] = FORMATS, plots: bool = True
) -> list[Path]:
    """Render a finished run directory's report; returns the paths written.

    * ``report.html``: self-contained, every plot inline as a base64 PNG;
    * ``report.md``: plots saved as ``plots/<name>.png`` beside it, linked relatively.

    Both hold the same tables (summary, channels, search, trials, fine-tuning,
    environment) with numbers formatted from report.json by
    :mod:`iaprune.reports.content`. Without matplotlib (or with ``plots=False``) the
    tables are still written and the report says the plots were skipped.
    Files are written as regular files in the run directory (planted links are replaced,
    :meth:`iaprune.rundir.RunDir.write_bytes`) while holding the run's lock. Raises
    :class:`IAPruneError` for a directory that is not a finished run, a report path that
    is a directory (or ``plots`` a file) and a failed write (disk full).
    """
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise IAPruneError(
            f"unknown report format(s) {', '.join(sorted(unknown))}; valid: {', '.join(FORMATS)}"
        )
    run = RunDir.existing(run_dir, lock=True)
    run.check_files(tuple(f"report.{fmt}" for fmt in formats))
    plot_dir = run / PLOT_DIR
    if plots and "md" in formats and not plot_dir.is_symlink() and plot_dir.is_file():
        raise IAPruneError(f"{plot_dir} is a file, not a folder; remove it or move it away")
    data = RunData.load(run.root)
    if plots:
        images, note = draw_plots(data)
    else:
        images, note = {}, "plots were skipped (disabled)"
    sections = build_sections(data)
    written: list[Path] = []
    if "html" in formats:
        html = render_html(data, sections, images, note=note)
        written.append(run.write_bytes("report.html", html.encode("utf-8")))
    if "md" in formats:
        links: dict[str, str] = {}
        for name, png in images.items():
            links[name] = f"{PLOT_DIR}/{name}.png"
            written.append(run.write_bytes(links[name], png))
        md = render_markdown(data, sections, links, note=note)
        written.append(run.write_bytes("report.md", md.encode("utf-8")))
    return written
