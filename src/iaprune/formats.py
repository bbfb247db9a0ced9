"""The format version of the JSON files iaprune writes, and their one migration path.

Every JSON object iaprune writes into a run directory (``config.json``, ``model.json``,
``search.json``, ``finetune.json``, ``report.json``) and every pruning spec carries
``"format_version"``. Readers pass what they read through :func:`migrate`, the one
place where an older layout is brought up to date, so no reader needs a compatibility
branch of its own:

* a file without the key is from before versions existed (format 0);
* a file of an older format is upgraded step by step (:data:`MIGRATIONS`);
* a file of a *newer* format than this iaprune knows is refused with a one-line error
  that says to upgrade, instead of being misread.

The ``from_dict`` constructors of the versioned records (``RunConfig``, ``SearchResult``,
``PruningSpec``) take such a file's object as it was read too (:func:`current`): one that
names its version is migrated, one without is taken as current, since that is what
``to_dict`` and the run directory's readers return.

The latency table has a layout and version of its own (:mod:`iaprune.cost.lut.meta`):
a table of another version is rebuilt, not migrated, because it is a cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from iaprune.errors import IAPruneError

__all__ = [
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "MIGRATIONS",
    "current",
    "migrate",
    "stamp",
    "version_of",
]

FORMAT_KEY = "format_version"
"""The key of the version in every versioned JSON object."""

FORMAT_VERSION = 1
"""The format this iaprune writes: 1 added the version key itself."""


def _from_unversioned(data: dict[str, Any]) -> dict[str, Any]:
    """Format 0 to 1: the layouts are the same; format 1 only records its version.

    Fields that format-0 files lack (added to a file before versions existed) take their
    defaults where the file is parsed (:func:`iaprune.config.check_types`).
    """
    return data


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _from_unversioned}
"""``MIGRATIONS[v]`` turns a format-``v`` object into a format-``v + 1`` one."""


def stamp(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with this iaprune's :data:`FORMAT_VERSION` first (a new dict)."""
    body = {k: v for k, v in data.items() if k != FORMAT_KEY}
    return {FORMAT_KEY: FORMAT_VERSION, **body}


def version_of(data: dict[str, Any], *, where: str) -> int:
    """The format version ``data`` declares (0 when it has none).

    Raises:
        IAPruneError: the version is not a non-negative integer.
    """
    version = data.get(FORMAT_KEY, 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise IAPruneError(f"{where} is invalid: {FORMAT_KEY} {version!r} is not a version")
    return version


def migrate(data: dict[str, Any], *, where: str) -> dict[str, Any]:
    """``data`` (read from ``where``) in this iaprune's format, without the version key.

    Raises:
        IAPruneError: ``where`` was written in a newer format than this iaprune reads, or
            declares an invalid version.
    """
    version = version_of(data, where=where)
    if version > FORMAT_VERSION:
        raise IAPruneError(
            f"{where} was written by a newer iaprune (format {version}; this version reads "
            f"formats up to {FORMAT_VERSION}): upgrade iaprune to open it"
        )
    body = {k: v for k, v in data.items() if k != FORMAT_KEY}
    for step in range(version, FORMAT_VERSION):
        body = MIGRATIONS[step](body)
    return body


def current(data: Any, *, where: str) -> Any:
    """``data`` given to a ``from_dict``: migrated when it is an object naming its version.

    An object without the key is taken as current (what ``to_dict`` and
    :meth:`iaprune.rundir.RunDir.read_json` return), so a record is never migrated twice;
    anything else is returned as it is, for the caller's own shape check to refuse.

    Raises:
        IAPruneError: as :func:`migrate`.
    """
    return migrate(data, where=where) if isinstance(data, dict) and FORMAT_KEY in data else data
