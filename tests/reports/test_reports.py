"""HTML / Markdown reports of a finished run: files, inline plots, numbers, no matplotlib."""

from __future__ import annotations

import base64
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from iaprune.cli.main import main
from iaprune.errors import MissingDependencyError
from iaprune.pareto import TrialPoint, pareto_front
from iaprune.reports import formats, plots
from iaprune.reports.content import RunData, planned_figures
from iaprune.reports.render import write_reports

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATA_URI = "data:image/png;base64,"


@pytest.fixture(scope="module")
def finished_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's copy of the session's finished tiny run (digits), without its reports.

    The reports the run wrote are removed: the ``reports`` fixture writes them again.
    """
    run = tmp_path_factory.mktemp("reports") / "r"
    shutil.copytree(tiny_run, run)
    for path in (run / "report.html", run / "report.md"):
        path.unlink()
    shutil.rmtree(run / "plots")
    return run


@pytest.fixture(scope="module")
def reports(finished_run: Path) -> list[Path]:
    """write_reports on the finished run (with matplotlib)."""
    return write_reports(finished_run)


def _copy_run(src: Path, dst: Path) -> Path:
    """The JSON artefacts of ``src`` (enough for a report) in a fresh directory."""
    dst.mkdir()
    for name in ("config.json", "report.json", "search.json", "finetune.json"):
        shutil.copy(src / name, dst / name)
    return dst


def _md_table(md: str, section: str) -> list[list[str]]:
    """Rows (header first, alignment row dropped) of the first table in ``## section``."""
    body = md.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in body.splitlines() if ln.startswith("|")]
    rows = [[c.strip().replace("\\", "") for c in ln.strip("|").split(" | ")] for ln in lines]
    return [rows[0], *rows[2:]]


class _Tables(HTMLParser):
    """Cell texts of every <table>, and every src / href attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.links: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _parse_html(path: Path) -> _Tables:
    parser = _Tables()
    parser.feed(path.read_text())
    return parser


def _number(cell: str) -> float:
    """``'392,320'`` -> 392320, ``'58.3%'`` -> 0.583, ``'+0.0111'`` -> 0.0111."""
    text = cell.replace(",", "")
    return float(text[:-1]) / 100 if text.endswith("%") else float(text)


def test_write_reports_writes_html_md_and_plot_files(finished_run: Path, reports: list[Path]):
    names = {p.relative_to(finished_run).as_posix() for p in reports}
    assert {"report.html", "report.md"} <= names
    figures = [f.name for f in planned_figures(RunData.load(finished_run))]
    assert {"channels", "history", "pareto_macs", "finetune"} <= set(figures)
    assert {f"plots/{name}.png" for name in figures} <= names
    for path in reports:
        assert path.is_file() and path.stat().st_size > 0


def test_html_is_self_contained_with_one_inline_png_per_plot(
    finished_run: Path, reports: list[Path]
):
    html = (finished_run / "report.html").read_text()
    parsed = _parse_html(finished_run / "report.html")
    figures = planned_figures(RunData.load(finished_run))
    images = [link for link in parsed.links if link.startswith(DATA_URI)]
    assert len(images) == html.count(DATA_URI) == len(figures)
    assert parsed.links == images  # no external src / href at all
    assert "<link" not in html and "<script" not in html and "url(" not in html
    for uri in images:
        assert base64.b64decode(uri[len(DATA_URI) :]).startswith(PNG_MAGIC)
    assert "plots were skipped" not in html


def test_markdown_numbers_equal_report_json(finished_run: Path, reports: list[Path]):
    report = json.loads((finished_run / "report.json").read_text())
    md = (finished_run / "report.md").read_text()
    header, *rows = _md_table(md, "Summary")
    assert header == ["metric", "baseline", "pruned", "reduction"]
    cells = {row[0]: row[1:] for row in rows}
    base, pruned, red = report["baseline"], report["pruned"], report["reduction"]
    # each check: (cell, exact value, half a unit in the last printed digit)
    checks = [
        (cells["top-1 accuracy"][0], base["accuracy"], 5e-5),
        (cells["top-1 accuracy"][1], pruned["accuracy"], 5e-5),
        (cells["top-1 accuracy"][2], report["accuracy_change"], 5e-5),
        (cells["MACs"][0], base["macs"], 0),
        (cells["MACs"][1], pruned["macs"], 0),
        (cells["MACs"][2], red["macs"], 5e-4),
        (cells["params"][0], base["params"], 0),
        (cells["params"][1], pruned["params"], 0),
        (cells["params"][2], red["params"], 5e-4),
        (cells["latency (ms)"][0], base["latency_ms"], 5e-4),
        (cells["latency (ms)"][1], pruned["latency_ms"], 5e-4),
        (cells["latency (ms)"][2], red["latency"], 5e-4),
    ]
    for cell, value, tol in checks:
        assert _number(cell) == pytest.approx(value, abs=tol + 1e-12), (cell, value)
    channels = {row[0]: row[1:3] for row in _md_table(md, "Channels")[1:]}
    for group, (original, kept) in report["channels"].items():
        assert [_number(c) for c in channels[group]] == [original, kept]


def test_html_and_markdown_show_the_same_cells(finished_run: Path, reports: list[Path]):
    md = (finished_run / "report.md").read_text()
    html_tables = _parse_html(finished_run / "report.html").tables
    assert html_tables[0] == _md_table(md, "Summary")
    assert html_tables[1] == _md_table(md, "Channels")


def test_markdown_images_are_relative_files(finished_run: Path, reports: list[Path]):
    md = (finished_run / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == len(planned_figures(RunData.load(finished_run)))
    for link in links:
        assert not Path(link).is_absolute() and link.startswith("plots/")
        assert (finished_run / link).read_bytes().startswith(PNG_MAGIC)


def test_without_matplotlib_tables_are_still_written(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def missing(module: str) -> Any:
        raise MissingDependencyError(f"{module} is required: pip install 'iaprune[plots]'")

    monkeypatch.setattr(plots, "optional_import", missing)
    run = _copy_run(finished_run, tmp_path / "r")
    written = write_reports(run)
    assert sorted(p.name for p in written) == ["report.html", "report.md"]
    md, html = (run / "report.md").read_text(), (run / "report.html").read_text()
    for text in (md.replace("\\", ""), html):
        assert "plots were skipped" in text and "iaprune[plots]" in text
        assert "top-1 accuracy" in text and "features.0" in text
    assert DATA_URI not in html and "![" not in md
    assert not (run / "plots").exists()
    assert _md_table(md, "Summary") == _md_table(
        (finished_run / "report.md").read_text(), "Summary"
    )


def test_report_cli_prints_paths(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    run = _copy_run(finished_run, tmp_path / "r")
    assert main(["report", str(run), "--format", "md", "--no-plots"]) == 0
    out = capsys.readouterr().out.split()
    assert out == [str(run / "report.md")]
    assert "plots were skipped" in (run / "report.md").read_text()
    assert not (run / "report.html").exists()


@pytest.mark.parametrize("case", ["empty", "missing", "unfinished"])
def test_report_cli_rejects_a_non_run_dir(
    case: str, finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    target = tmp_path / "x"
    if case == "empty":
        target.mkdir()
    elif case == "unfinished":
        target.mkdir()
        shutil.copy(finished_run / "config.json", target / "config.json")
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert not (target / "report.html").exists()


def test_pareto_front_keeps_non_dominated_points():
    pts = [
        TrialPoint(0, 0.50, 0.4, True),
        TrialPoint(1, 0.60, 0.6, True),
        TrialPoint(2, 0.55, 0.7, True),  # dominated by 1
        TrialPoint(3, 0.50, 0.5, False),  # dominated by 0
        TrialPoint(4, 0.60, 0.6, True),  # equal to 1: kept
        TrialPoint(5, 0.30, 0.1, True),
        TrialPoint(6, 0.90, 0.05, False),  # would dominate all, but over budget
    ]
    assert [p.number for p in pareto_front(pts)] == [5, 0, 1, 4]
    assert pareto_front([]) == []


def test_latency_trials_and_report_pareto_are_rendered(finished_run: Path, tmp_path: Path):
    run = _copy_run(finished_run, tmp_path / "r")
    search = json.loads((run / "search.json").read_text())
    for i, row in enumerate(search["history"]):
        row["latency_ms"] = 0.5 + 0.1 * i
    (run / "search.json").write_text(json.dumps(search))
    report = json.loads((run / "report.json").read_text())
    report["pareto"] = [dict(r, cost=r["latency_ms"]) for r in search["history"][:2]]
    (run / "report.json").write_text(json.dumps(report))
    data = RunData.load(run)
    assert "pareto_latency" in [f.name for f in planned_figures(data)]
    assert plots.render_plot("pareto_latency", data).startswith(PNG_MAGIC)
    write_reports(run, formats=("md",), plots=False)
    md = (run / "report.md").read_text()
    assert "| latency (ms) | feasible | note |" in md  # trials table gains a latency column
    assert "report.json, pareto" in md
    first = report["pareto"][0]
    header = "| trial | accuracy | pareto cost | MACs ratio | params ratio | activation ratio |"
    assert header in md  # ratios spread into columns; keep / value left out
    acc, macs = formats.fmt_accuracy(first["accuracy"]), formats.fmt_ratio(first["ratios"]["macs"])
    cost = formats.fmt_value(first["cost"])
    assert f"| {first['number']} | {acc} | {cost} | {macs} |" in md


def test_history_marks_warm_starts_and_failed_trials_on_integer_trial_numbers(
    tmp_path: Path,
) -> None:
    pytest.importorskip("matplotlib")
    history = [
        {"number": 0, "value": 0.8, "feasible": True, "warm_start": "uniform"},
        {"number": 1, "value": 0.7, "feasible": True, "warm_start": "global"},
        {"number": 3, "value": 0.85, "feasible": True, "warm_start": None},
        {"number": 4, "value": 0.9, "feasible": False},
    ]
    report = {"search": {"best_trial": 3}, "baseline": {}, "pruned": {}}
    data = RunData(root=tmp_path, report=report, history=history, failed=[2])
    fig = plots.history_figure(data)
    ax = fig.axes[0]
    handles = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    assert {"warm start (heuristic)", "failed trial", "infeasible trial"} <= set(handles)
    assert sorted(x for x, _ in handles["warm start (heuristic)"].get_offsets()) == [0, 1]
    assert [x for x, _ in handles["failed trial"].get_offsets()] == [2]
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_a_run_records_its_failed_and_warm_start_trials_for_the_report(finished_run: Path) -> None:
    search = json.loads((finished_run / "search.json").read_text())
    assert "failed_numbers" in search
    assert any(row.get("warm_start") for row in search["history"])
    assert RunData.load(finished_run).failed == search["failed_numbers"]
