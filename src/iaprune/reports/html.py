"""The report as one self-contained HTML file: inline CSS, plots as base64 PNG data URIs."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape

from iaprune.reports.content import Figure, RunData, Section, Table, Text, report_title

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 60rem; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #d5d8dc; padding: 0.25rem 0.6rem; }
th { background: #f2f4f6; } td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
td.l, th.l { text-align: left; } caption { caption-side: bottom; font-size: 0.85rem;
       color: #555; padding-top: 0.3rem; text-align: left; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85rem; color: #555; }
.note { background: #fff6e0; border-left: 4px solid #e0a800; padding: 0.5rem 0.8rem; }
.skipped { color: #777; font-style: italic; }
""".strip()


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def table(tab: Table) -> str:
    """An HTML table with right-aligned numeric columns."""
    align = tab.alignment()
    head = "".join(
        f'<th class="{a}">{escape(h)}</th>' for h, a in zip(tab.headers, align, strict=True)
    )
    body = "\n".join(
        "<tr>"
        + "".join(f'<td class="{a}">{escape(c)}</td>' for c, a in zip(row, align, strict=True))
        + "</tr>"
        for row in tab.rows
    )
    caption = f"<caption>{escape(tab.caption)}</caption>" if tab.caption else ""
    return f"<table>{caption}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>"


def figure(fig: Figure, png: bytes | None) -> str:
    """An inline image with its caption; a note when the plot was not drawn."""
    if png is None:
        return f'<p class="skipped">Plot skipped: {escape(fig.title)}.</p>'
    return (
        f'<figure id="plot-{escape(fig.name)}"><img src="{data_uri(png)}" '
        f'alt="{escape(fig.title)}">\n<figcaption>{escape(fig.caption)}</figcaption></figure>'
    )


def render_html(
    data: RunData,
    sections: Sequence[Section],
    images: Mapping[str, bytes],
    *,
    note: str | None = None,
) -> str:
    """The whole report; ``images`` maps figure names to PNG bytes."""
    title = escape(report_title(data.report))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title>",
        f"<style>\n{STYLE}\n</style></head><body>",
        f"<h1>{title}</h1>",
    ]
    if note:
        parts.append(f'<p class="note"><strong>Note:</strong> {escape(note)}</p>')
    for section in sections:
        parts.append(f"<section><h2>{escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                parts.append(table(block))
            elif isinstance(block, Figure):
                parts.append(figure(block, images.get(block.name)))
            elif isinstance(block, Text):
                parts.append(f"<p>{escape(block.text)}</p>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
