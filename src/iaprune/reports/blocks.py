"""The layout-independent blocks a report is made of: sections of tables, figures, text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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
