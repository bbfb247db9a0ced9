"""The report as GitHub-flavoured Markdown; plots are PNG files referenced relatively."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from iaprune.reports.content import Figure, RunData, Section, Table, Text, report_title

_ESCAPE = str.maketrans({c: "\\" + c for c in "\\|*_`[]"})
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def escape(text: str) -> str:
    """Escape Markdown syntax characters so ``text`` shows literally (also in tables)."""
    return _TAG_START.sub("&lt;", text.replace("\n", " ").translate(_ESCAPE))


def table(tab: Table) -> str:
    """A pipe table; the alignment row follows :meth:`Table.alignment`."""
    rule = {"l": ":---", "r": "---:"}
    lines = [
        "| " + " | ".join(escape(h) for h in tab.headers) + " |",
        "|" + "|".join(rule[a] for a in tab.alignment()) + "|",
    ]
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in tab.rows]
    if tab.caption:
        lines += ["", f"*{escape(tab.caption)}*"]
    return "\n".join(lines)


def figure(fig: Figure, path: str | None) -> str:
    """An image link to ``path`` with the caption; a note when the plot was not drawn."""
    if path is None:
        return f"*Plot skipped: {escape(fig.title)}.*"
    return f"![{escape(fig.title)}]({path})\n\n*{escape(fig.caption)}*"


def render_markdown(
    data: RunData,
    sections: Sequence[Section],
    images: Mapping[str, str],
    *,
    note: str | None = None,
) -> str:
    """The whole report; ``images`` maps figure names to paths relative to report.md."""
    parts = [f"# {escape(report_title(data.report))}"]
    if note:
        parts.append(f"> **Note:** {escape(note)}")
    for section in sections:
        parts.append(f"## {escape(section.title)}")
        for block in section.blocks:
            if isinstance(block, Table):
                parts.append(table(block))
            elif isinstance(block, Figure):
                parts.append(figure(block, images.get(block.name)))
            elif isinstance(block, Text):
                parts.append(escape(block.text))
    return "\n\n".join(parts) + "\n"
