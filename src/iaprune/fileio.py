"""Output files: refuse targets that are not regular files, write atomically.

An atomic write renames a temporary file over the target; renamed over a device node,
a fifo or a directory it would replace that node, so such targets are refused first.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from iaprune.errors import IAPruneError


def check_output_file(path: str | Path, *, what: str = "output") -> Path:
    """Refuse an existing ``path`` that is not a regular file (symlinks are followed)."""
    target = Path(path).expanduser()
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise IAPruneError(f"cannot use {target} as {what}: {exc.strerror}") from exc
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise IAPruneError(f"{what} {target} is {kind}; name a regular file")
    return target


def write_atomic(path: str | Path, write: Callable[[IO[str]], None], *, what: str) -> Path:
    """Create ``path``'s folder, call ``write`` on a temporary file, rename it over ``path``.

    Raises:
        IAPruneError: ``path`` exists and is not a regular file, or cannot be written.
    """
    target = check_output_file(path, what=what)
    if target.is_symlink():
        target = target.resolve()  # replace the file the link names, keep the link
    tmp = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            write(fh)
        os.replace(tmp, target)
    except OSError as exc:
        raise IAPruneError(f"cannot write {what} {target}: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return target
