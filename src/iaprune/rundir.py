"""The run directory: every artefact of a pruning run, written atomically, one writer at a time.

A run directory is self-contained: the baseline weights are copied in (``baseline.pt``),
a pickled model file too (``model.pt``), and stored paths are absolute or relative to
the run directory.

Files are written only as regular files inside it (:mod:`iaprune.fileio`): a symbolic
link planted in a run directory received from someone else is replaced, never written
through, and a SQLite study (``study.db``) that is a link is refused.

One process at a time writes a run directory: every command that writes one holds an OS
file lock on ``.iaprune.lock`` in it (:func:`lock_run_dir`, non-blocking: a second
process gets a one-line error naming the holder's pid). The lock is released by
:func:`release_locks` (the CLI calls it when a command ends) or when the process ends,
however it ends. Search workers (``iaprune worker``) write only to the study and take no
lock.

``--overwrite`` never deletes a finished run before the new one has started: a fresh,
locked directory takes the old one's place and the old one is moved to a hidden sibling
``.NAME.overwritten-XXXX/NAME``, removed only by :meth:`RunDir.starting` once the new
run's config.json is written, or moved back when starting fails. A process killed in
between leaves that sibling; :func:`recover` (run by every command that opens the run)
moves it back, or finishes the overwrite when the new run had started.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iaprune.errors import IAPruneError
from iaprune.fileio import (
    atomic_path,
    check_output_file,
    current_umask,
    write_bytes,
    write_json,
)
from iaprune.formats import migrate, stamp

log = logging.getLogger(__name__)

RUN_MARKER = "config.json"
"""The file that makes a directory an iaprune run directory (written last when a run starts)."""
LOCK_NAME = ".iaprune.lock"
"""The lock file of a run directory (holds the pid of the process writing the run)."""
STUDY_FILES = ("study.db", "study.db-journal", "study.db-wal", "study.db-shm")
"""The SQLite study of a run and the files SQLite writes beside it."""
RUN_FILES = (
    "config.json",
    "model.json",
    "model.pt",
    "baseline.pt",
    "baseline.partial.pt",
    "search.json",
    "spec.json",
    "pruned.pt",
    "pruned.partial.pt",
    "finetune.json",
    "report.json",
    "latency_table.json",
)
"""The files a run writes in its directory (besides the study and the report renderings)."""
START_FILES = frozenset({LOCK_NAME, "baseline.pt", "model.pt", "model.json"})
"""What a new run writes before its config.json (an interrupted start leaves only these)."""


class RunDirInUse(IAPruneError):
    """Another process holds the run directory's lock."""


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
        """Create and lock ``root``; an existing non-empty one needs ``resume`` or ``overwrite``.

        With ``overwrite`` the old directory is only moved aside; use :meth:`starting`.
        """
        path = Path(root)
        if resume and overwrite:
            raise IAPruneError("--resume and --overwrite exclude each other")
        if path.exists() and not path.is_dir():
            raise IAPruneError(f"run directory {path} exists and is not a directory")
        recover(path)
        if _has_files(path):
            if not (resume or overwrite):
                raise IAPruneError(
                    f"run directory {path} already exists; use --resume to continue it or "
                    "--overwrite to start again"
                )
            lock_run_dir(path)
            if not overwrite:
                return cls(path)
            return cls(path, _replace_with_fresh(path), created=True)
        if resume:
            raise IAPruneError(f"nothing to resume: run directory {path} does not exist")
        created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IAPruneError(f"cannot create run directory {path}: {exc.strerror}") from exc
        lock_run_dir(path)
        return cls(path, None, created)

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
    def existing(cls, root: str | Path, *, lock: bool = False) -> RunDir:
        """An existing run directory (for finetune / evaluate / report); ``lock`` to write it."""
        path = Path(root)
        recover(path)
        if not (path / RUN_MARKER).is_file():
            raise IAPruneError(f"{path} is not an iaprune run directory (no config.json)")
        if lock:
            lock_run_dir(path)
        return cls(path)

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    @property
    def storage(self) -> str:
        """Default Optuna storage URL: SQLite in the run directory (path percent-escaped).

        Raises:
            IAPruneError: ``study.db`` (or a SQLite file beside it) is a symbolic link.
        """
        for name in STUDY_FILES:
            if (self.root / name).is_symlink():
                raise IAPruneError(
                    f"{self.root / name} is a symbolic link: iaprune writes only regular files "
                    "in a run directory; put the database itself there (or remove the link)"
                )
        return sqlite_url(self.root.resolve() / "study.db")

    def check_files(self, names: tuple[str, ...] = RUN_FILES) -> None:
        """Refuse, before any work, a run file that is a directory, fifo or device."""
        for name in names:
            check_output_file(self.root / name, what="run file")

    def copy_in(self, source: str | Path, name: str) -> Path:
        """Copy ``source`` into the run directory as ``name`` (atomically)."""
        with atomic_path(self.root / name, what="run file", inside=self.root) as tmp:
            shutil.copyfile(source, tmp)
        return self.root / name

    def write_json(self, name: str, data: Any) -> Path:
        """Write ``data`` as JSON atomically, as a regular file in the run directory.

        An object gets this iaprune's ``format_version`` (:mod:`iaprune.formats`).
        """
        if isinstance(data, dict):
            data = stamp(data)
        return write_json(self.root / name, data, what="run file", inside=self.root)

    def write_json_if_changed(self, name: str, data: Any) -> None:
        """:meth:`write_json` unless ``name`` already holds ``data`` (resume leaves it as is)."""
        if (self.root / name).is_file():
            try:
                if self.read_json(name) == data:
                    return
            except IAPruneError:
                pass
        self.write_json(name, data)

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Write ``data`` atomically as ``name`` (may name a sub-folder: ``plots/a.png``)."""
        return write_bytes(self.root / name, data, what="run file", inside=self.root)

    def read_json(self, name: str) -> Any:
        """Read a JSON artefact with a one-line error when missing or corrupt.

        An object is brought to this iaprune's format (:func:`iaprune.formats.migrate`) and
        returned without its ``format_version``; one of a newer format is refused.
        """
        path = self.root / name
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise IAPruneError(f"{path} not found: run the earlier step first") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IAPruneError(f"{path} is corrupt: {exc}") from exc
        except OSError as exc:  # a directory, unreadable, ...
            raise IAPruneError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return migrate(data, where=str(path)) if isinstance(data, dict) else data

    def read_dict(self, name: str) -> dict[str, Any]:
        """Read a JSON artefact that must hold an object (``[]`` is a one-line error too)."""
        data = self.read_json(name)
        if not isinstance(data, dict):
            raise IAPruneError(
                f"{self.root / name} is invalid: expected a JSON object, got {type(data).__name__}"
            )
        return data


# -- one writer at a time ------------------------------------------------------------------
_HELD: dict[tuple[int, int], tuple[Any, int]] = {}
"""Locks this process holds: directory (device, inode) -> (FileLock, a dup of its fd)."""


def lock_run_dir(root: str | Path) -> None:
    """Hold ``root``'s lock until :func:`release_locks` (again in this process: no-op).

    Raises:
        RunDirInUse: another process holds it (the message names its pid).
    """
    from filelock import FileLock, Timeout

    root = Path(root)
    key = _key(root)
    if key in _HELD and _still_held(root, _HELD[key][1]):
        return
    path = root / LOCK_NAME
    if path.is_symlink():
        path.unlink()  # a planted link: replace it, never follow it
    fds: list[int] = []

    def record_pid(fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        fds.append(os.dup(fd))

    lock = FileLock(
        path, blocking=False, thread_local=False, fallback_to_soft=False, on_acquired=record_pid
    )
    try:
        lock.acquire()
    except Timeout:
        pid = _holder(path)
        who = f" (pid {pid})" if pid else ""
        raise RunDirInUse(
            f"run directory {root} is in use by another iaprune process{who}; "
            "wait for it to end (or stop it), then try again"
        ) from None
    except OSError as exc:  # read-only (the write fails later with its own message), no flock
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            log.warning("cannot lock run directory %s (%s): run one process at a time", root, exc)
        return
    _HELD[key] = (lock, fds[0] if fds else -1)


def release_locks() -> None:
    """Release every run-directory lock this process holds (the lock files are emptied)."""
    while _HELD:
        _, (lock, fd) = _HELD.popitem()
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)
        lock.release(force=True)


def _key(root: Path) -> tuple[int, int]:
    st = os.stat(root)
    return st.st_dev, st.st_ino


def _still_held(root: Path, fd: int) -> bool:
    """Whether ``fd`` is still ``root``'s lock file (not that of a removed folder's inode)."""
    try:
        return fd >= 0 and os.path.samestat(os.fstat(fd), os.lstat(root / LOCK_NAME))
    except OSError:
        return False


def _holder(path: Path) -> int | None:
    """The pid written in a lock file, if any."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        text = os.read(fd, 32).decode(errors="replace").strip()
    finally:
        os.close(fd)
    return int(text) if text.isdigit() else None


# -- --overwrite: move aside, restore --------------------------------------------------------
def recover(path: Path) -> None:
    """Undo (or finish) an ``--overwrite`` of ``path`` that was killed half-way.

    The old run moved aside comes back when the new run had not started (no config.json;
    a folder holding only :data:`START_FILES` is removed first); when it had started, the
    old run is removed as the overwrite asked. A folder another process is overwriting
    right now is left alone.
    """
    pattern = f".{glob.escape(path.name)}.overwritten-*"
    for holder in sorted(path.parent.glob(pattern)):
        moved = holder / path.name
        if not moved.is_dir() or not _try_lock(moved):
            continue
        if (path / RUN_MARKER).is_file():
            shutil.rmtree(holder, ignore_errors=True)
            log.info("removed %s, left by an interrupted --overwrite of %s", holder, path)
        elif not path.exists() or {p.name for p in path.iterdir()} <= START_FILES:
            shutil.rmtree(path, ignore_errors=True)
            _restore(moved, path)
            log.warning("restored run directory %s, which an interrupted --overwrite moved", path)
        else:
            raise IAPruneError(
                f"an interrupted --overwrite left the previous run of {path} in {moved}; "
                f"move it back (or delete it) by hand"
            )
    for fresh in path.parent.glob(f".{glob.escape(path.name)}.new-*"):
        if _try_lock(fresh):
            shutil.rmtree(fresh, ignore_errors=True)


def _try_lock(root: Path) -> bool:
    try:
        lock_run_dir(root)
    except RunDirInUse:
        return False
    return True


def _has_files(path: Path) -> bool:
    """Whether ``path`` is a directory with anything but a lock file in it."""
    return path.is_dir() and any(p.name != LOCK_NAME for p in path.iterdir())


def _replace_with_fresh(path: Path) -> Path:
    """Put a new, locked, empty directory in ``path``'s place; returns where the old one went."""
    try:
        fresh = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.new-"))
    except OSError as exc:
        raise IAPruneError(f"cannot start a new run beside {path}: {exc.strerror}") from exc
    try:
        os.chmod(fresh, 0o777 & ~current_umask())  # mkdtemp makes it private
        lock_run_dir(fresh)
        moved = _move_aside(path)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    try:
        os.rename(fresh, path)
    except OSError as exc:
        shutil.rmtree(fresh, ignore_errors=True)
        _restore(moved, path)
        raise IAPruneError(f"cannot replace run directory {path}: {exc.strerror}") from exc
    return moved


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
    """The run directory ``path`` is, or lies directly in, else ``None``.

    Folders are resolved (symlinks followed); a symbolic link at ``path`` itself is not,
    since writing replaces the link.
    """
    target = Path(path).expanduser()
    target = target.parent.resolve() / target.name if target.is_symlink() else target.resolve()
    for folder in (target, target.parent):
        if (folder / RUN_MARKER).is_file():
            return folder
    return None
