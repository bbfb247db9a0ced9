"""User-facing errors: the CLI prints these as one line and exits non-zero."""

from __future__ import annotations

import errno
import re


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


DISK_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
"""``OSError`` numbers of a full disk or an exhausted quota."""


def resource_error(exc: BaseException) -> str | None:
    """A one-line message when ``exc`` means the disk or the memory ran out, else None.

    The one place that recognises exhausted resources: a full disk or quota (``OSError``
    ENOSPC/EDQUOT, which :func:`iaprune.train.save_atomic` raises for ``torch.save``
    too), and memory (``MemoryError``, ``OSError`` ENOMEM, torch's ``OutOfMemoryError``
    and its CPU allocator's ``RuntimeError``). The CLI prints it as one line, exit 2.
    """
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        where = f" writing {exc.filename}" if exc.filename else ""
        return f"disk full{where}: {exc.strerror}; free some space, then continue with --resume"
    text = " ".join(str(exc).split())
    oom = isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
    oom = oom or (isinstance(exc, OSError) and exc.errno == errno.ENOMEM)
    oom = oom or (isinstance(exc, RuntimeError) and "can't allocate memory" in text)
    if oom:
        asked = re.search(r"tried to allocate (\d+) bytes", text)
        if asked:
            detail = f"{int(asked.group(1)) / 2**30:.1f} GiB asked for at once"
        else:
            detail = text[:200] or type(exc).__name__
        return (
            f"out of memory ({detail}); use smaller sizes (--batch-size, --image-size, "
            "--pad-to, a smaller model)"
        )
    return None
