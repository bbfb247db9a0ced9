"""The run directory: every artefact of a pruning run, written atomically.

A run directory is self-contained: the baseline weights are copied in (``baseline.pt``),
a pickled model file too (``model.pt``), and stored paths are absolute or relative to
the run directory. ``--overwrite`` never deletes a finished run before the new one has
started: the old directory is moved aside and removed only by :meth:`RunDir.starting`
once the new run's files are written, or moved back when starting fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iaprune.errors import IAPruneError

RUN_MARKER = "config.json"
"""The file that makes a directory an iaprune run directory."""


@dataclass(frozen=True)
class RunDir:
    """Paths of one run's files.

    ``aside`` is where :meth:`prepare` moved a run being overwritten; ``created`` says
    whether :meth:`prepare` created ``root`` (so a failed start may remove it again).
    """

    root: Path
    aside: Path | None = None
    created: bool = False

    @classmethod
    def prepare(cls, root: str | Path, *, resume: bool = False, overwrite: bool = False) -> RunDir:
        """Create ``root``; an existing non-empty one needs ``resume`` or ``overwrite``.

        With ``overwrite`` the old directory is only moved aside; use :meth:`starting`.
        """
        path = Path(root)
        if resume and overwrite:
            raise IAPruneError("--resume and --overwrite exclude each other")
        if path.exists() and not path.is_dir():
            raise IAPruneError(f"run directory {path} exists and is not a directory")
        aside = None
        if path.is_dir() and any(path.iterdir()):
            if overwrite:
                aside = _move_aside(path)
            elif not resume:
                raise IAPruneError(
                    f"run directory {path} already exists; use --resume to continue it or "
                    "--overwrite to start again"
                )
        elif resume:
            raise IAPruneError(f"nothing to resume: run directory {path} does not exist")
        created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if aside is not None:
                _restore(aside, path)
            raise IAPruneError(f"cannot create run directory {path}: {exc.strerror}") from exc
        return cls(path, aside, created)

    @contextlib.contextmanager
    def starting(self) -> Iterator[RunDir]:
        """Wrap a run's start: on success drop the overwritten run, on failure undo.

        Failing, a directory :meth:`prepare` created is removed and an overwritten run
        is moved back byte for byte; a resumed directory is left as it was.
        """
        try:
            yield self
        except BaseException:
            if self.created:
                shutil.rmtree(self.root, ignore_errors=True)
            if self.aside is not None:
                _restore(self.aside, self.root)
            raise
        if self.aside is not None:
            shutil.rmtree(self.aside.parent, ignore_errors=True)

    @classmethod
    def existing(cls, root: str | Path) -> RunDir:
        """An existing run directory (for finetune / evaluate / report)."""
        path = Path(root)
        if not (path / RUN_MARKER).is_file():
            raise IAPruneError(f"{path} is not an iaprune run directory (no config.json)")
        return cls(path)

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    @property
    def storage(self) -> str:
        """Default Optuna storage URL: SQLite in the run directory (path percent-escaped)."""
        return sqlite_url(self.root / "study.db")

    def copy_in(self, source: str | Path, name: str) -> Path:
        """Copy ``source`` into the run directory as ``name`` (atomically)."""
        path = self.root / name
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, path)
        except OSError as exc:
            raise IAPruneError(f"cannot copy {source} into {self.root}: {exc.strerror}") from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    def write_json(self, name: str, data: Any) -> Path:
        """Write ``data`` as JSON atomically (a failed write names ``name``, leaves no file)."""
        path = self.root / name
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, indent=2, default=str)
            os.replace(tmp, path)
        except OSError as exc:  # e.g. a full disk: the CLI says so in one line
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    def read_json(self, name: str) -> Any:
        """Read a JSON artefact with a one-line error when missing or corrupt."""
        path = self.root / name
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise IAPruneError(f"{path} not found: run the earlier step first") from None
        except json.JSONDecodeError as exc:
            raise IAPruneError(f"{path} is corrupt: {exc}") from exc

    def read_dict(self, name: str) -> dict[str, Any]:
        """Read a JSON artefact that must hold an object (``[]`` is a one-line error too)."""
        data = self.read_json(name)
        if not isinstance(data, dict):
            raise IAPruneError(
                f"{self.root / name} is invalid: expected a JSON object, got {type(data).__name__}"
            )
        return data


def _move_aside(path: Path) -> Path:
    """Rename ``path`` into a fresh hidden sibling folder; returns its new path."""
    try:
        holder = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.overwritten-"))
    except OSError as exc:
        raise IAPruneError(f"cannot move run directory {path} aside: {exc.strerror}") from exc
    moved = holder / path.name
    try:
        os.rename(path, moved)
    except OSError as exc:
        holder.rmdir()
        raise IAPruneError(f"cannot move run directory {path} aside: {exc.strerror}") from exc
    return moved


def _restore(moved: Path, path: Path) -> None:
    """Undo :func:`_move_aside` (``path`` must no longer exist)."""
    os.rename(moved, path)
    moved.parent.rmdir()


def sqlite_url(path: str | Path) -> str:
    """SQLAlchemy URL of the SQLite file ``path``, with ``?``, ``#``, ``%`` escaped."""
    from sqlalchemy.engine import URL

    database = str(Path(path).resolve())
    return URL.create("sqlite", database=database).render_as_string(hide_password=False)


def in_run_dir(path: str | Path) -> Path | None:
    """The run directory ``path`` is, or lies directly in (symlinks followed), else ``None``."""
    target = Path(path).expanduser().resolve()
    for folder in (target, target.parent):
        if (folder / RUN_MARKER).is_file():
            return folder
    return None
