"""Progress bars (rich) that switch off when output is not a terminal or when asked."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

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
