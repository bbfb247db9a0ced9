"""User-facing errors: the CLI prints these as one line and exits non-zero."""

from __future__ import annotations


class IAPruneError(Exception):
    """An error caused by the user's input (names, paths, budgets, checkpoints).

    The CLI catches it, prints ``error: <message>`` on one line and exits with code 2.
    """


class MissingDependencyError(IAPruneError):
    """An optional dependency is needed but not installed."""


def one_line(exc: BaseException, limit: int = 300) -> str:
    """A third-party exception's message on one line, at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
