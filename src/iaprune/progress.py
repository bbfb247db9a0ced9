"""Progress bars (rich) that switch off when output is not a terminal or when asked."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_ENABLED = sys.stderr.isatty() and not os.environ.get("IAPRUNE_NO_PROGRESS")
_ACTIVE = 0  # rich allows one live display: nested loops run without a bar


def set_progress(enabled: bool) -> None:
    """Globally enable or disable progress bars."""
    global _ENABLED
    _ENABLED = enabled


def progress(items: Iterable[T], *, desc: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a transient progress bar when enabled (outermost loop only)."""
    global _ACTIVE
    if not _ENABLED or _ACTIVE:
        yield from items
        return
    from rich.progress import track

    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    _ACTIVE += 1
    try:
        yield from track(items, description=desc, total=total, transient=True)
    finally:
        _ACTIVE -= 1


class Counter:
    """A progress bar moved by hand (:func:`counter`); does nothing when bars are off."""

    def __init__(self, bar: Any = None, task: Any = None) -> None:
        self._bar = bar
        self._task = task

    def update(self, completed: int, note: str = "") -> None:
        """Show ``completed`` steps done and ``note`` (for example the best score so far)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, note=note)


@contextlib.contextmanager
def counter(desc: str, total: int) -> Iterator[Counter]:
    """A transient bar of ``total`` steps with a note, when enabled (outermost only)."""
    global _ACTIVE
    if not _ENABLED or _ACTIVE:
        yield Counter()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
    )
    _ACTIVE += 1
    try:
        with Progress(*columns, transient=True) as bar:
            yield Counter(bar, bar.add_task(desc, total=total, note=""))
    finally:
        _ACTIVE -= 1
