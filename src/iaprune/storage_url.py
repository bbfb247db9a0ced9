"""Storage URLs: passwords masked wherever a URL is shown or stored, and in-memory SQLite.

The study's storage URL is a setting (:class:`iaprune.config.SearchConfig`); its
password never reaches config.json, a log line or an error message.
"""

from __future__ import annotations

import re


def in_memory_sqlite(url: str) -> bool:
    """Whether ``url`` is an in-memory SQLite database (``sqlite://``, ``sqlite:///:memory:``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0].lower() != "sqlite":
        return False
    database = rest.split("?")[0].lstrip("/")
    return database in ("", ":memory:") or database.startswith("file::memory:")


MASK = "***"
"""What a storage URL's password is shown as (config.json, logs, errors): SQLAlchemy's mask."""


def masked_url(url: str) -> str:
    """``url`` with its password (user part or ``?password=``) shown as ``***``.

    What config.json stores and every message prints. A URL without a password is
    returned unchanged (SQLite paths keep their escaping).
    """
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # not a URL SQLAlchemy parses: hide whatever sits before the '@'
        return re.sub(r"(://[^/:@]*:)[^/@]*@", rf"\g<1>{MASK}@", url)
    if parsed.password is None and "password" not in parsed.query:
        return url
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": MASK})
    shown = parsed.render_as_string(hide_password=True)
    return shown.replace("password=%2A%2A%2A", f"password={MASK}")  # as the user part shows it


def unmasked_url(url: str) -> str:
    """``url`` without a password that is :data:`MASK` (a URL read back from config.json).

    A masked password is never sent: the driver connects without one, so libpq takes it
    from ``PGPASSWORD`` or ``~/.pgpass`` (or the user passes ``--storage`` again).
    """
    from sqlalchemy.engine import URL, make_url

    try:
        parsed = make_url(url)
    except Exception:  # not a URL: opening it fails with its own one-line error
        return url
    masked = parsed.password == MASK or parsed.query.get("password") == MASK
    if not masked:
        return url
    query = {k: v for k, v in parsed.query.items() if k != "password"}
    bare = URL.create(  # URL.set() cannot remove a password
        parsed.drivername,
        username=parsed.username,
        password=None if parsed.password == MASK else parsed.password,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=query,
    )
    return bare.render_as_string(hide_password=False)
