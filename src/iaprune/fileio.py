"""Output files: written atomically as regular files; a symbolic link is replaced, never followed.

Every file iaprune writes goes through :func:`atomic_path`: the data goes to a temporary
file in the target's folder, which is renamed over the target only when the writer
finished (an interrupted or failed write leaves the old file, or none, and no temporary
file). The rename replaces a symbolic link planted at the target instead of writing
through it. A target that is a directory, fifo or device is refused with one line (a
rename would replace a directory or a device node). With ``inside`` (a run directory),
the folders between it and the target must be real folders in it: a folder planted as a
symbolic link is replaced by a new, empty folder, so nothing is written outside ``inside``.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from iaprune.errors import IAPruneError, resource_error


def check_output_file(path: str | Path, *, what: str = "output") -> Path:
    """Refuse an existing ``path`` that is a directory, fifo or device (a link is fine).

    A symbolic link is accepted whatever it names: writes replace the link itself.
    """
    target = Path(path).expanduser()
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise IAPruneError(f"cannot use {target} as {what}: {exc.strerror}") from exc
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        kind = "a directory" if stat.S_ISDIR(mode) else "a special file"
        raise IAPruneError(f"{what} {target} is {kind}, not a regular file")
    return target


def _real_folder(folder: Path, inside: Path) -> None:
    """Make ``folder`` (below ``inside``) a real directory: links are replaced, files refused."""
    parts = folder.relative_to(inside).parts
    current = inside
    for part in parts:
        current = current / part
        if current.is_symlink():
            current.unlink()  # a planted link to a folder elsewhere: drop the link only
        if current.exists() and not current.is_dir():
            raise IAPruneError(f"{current} is a file, not a folder; remove it or move it away")
        current.mkdir(exist_ok=True)


def current_umask() -> int:
    """The process's umask (new files get ``0o666 & ~umask``, folders ``0o777 & ~umask``)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path, *, what: str, inside: Path | None = None) -> Iterator[Path]:
    """A temporary path beside ``path``; renamed over ``path`` when the block ends without error.

    Write the data to the yielded path (any writer that takes a file name: ``torch.save``,
    ``torch.onnx.export``, ...). On any exception, Ctrl-C included, the temporary file is
    removed and ``path`` is left as it was. ``inside``: see the module docstring.

    Raises:
        IAPruneError: ``path`` is a directory, fifo or device, a folder on the way is a
            file, or the file cannot be written (disk full, read-only, ...).
    """
    target = Path(path).expanduser()
    tmp: str | None = None
    try:
        if inside is not None:
            _real_folder(target.parent, inside)  # first: a folder link is not looked through
        check_output_file(target, what=what)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # readable like any file the user creates
        os.replace(tmp, target)  # replaces a symbolic link itself, never the file it names
    except OSError as exc:
        full = resource_error(OSError(exc.errno, exc.strerror, str(target)))
        raise IAPruneError(full or f"cannot write {what} {target}: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def write_atomic(
    path: str | Path,
    write: Callable[[IO[str]], None],
    *,
    what: str,
    inside: Path | None = None,
) -> Path:
    """Write text with ``write(file)`` through :func:`atomic_path`; returns the path."""
    with atomic_path(path, what=what, inside=inside) as tmp, tmp.open("w", encoding="utf-8") as fh:
        write(fh)
    return Path(path).expanduser()


def write_bytes(path: str | Path, data: bytes, *, what: str, inside: Path | None = None) -> Path:
    """Write ``data`` through :func:`atomic_path`; returns the path."""
    with atomic_path(path, what=what, inside=inside) as tmp:
        tmp.write_bytes(data)
    return Path(path).expanduser()


def write_json(path: str | Path, data: Any, *, what: str, inside: Path | None = None) -> Path:
    """Write ``data`` as indented JSON through :func:`atomic_path`; returns the path."""
    return write_atomic(
        path, lambda fh: json.dump(data, fh, indent=2, default=str), what=what, inside=inside
    )
