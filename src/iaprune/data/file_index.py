"""The file listing of an image folder, and its cache in the run directory.

Listing ImageNet's ``train/`` (1.28 M files in 1,000 folders) takes minutes on a network
file system, and every process of a run (each torchrun rank, each ``iaprune worker``,
every ``finetune`` and ``--resume``) would repeat it. A run therefore keeps the listing in
``RUN_DIR/data_index.json.gz`` and reuses it while it is current:

* every folder of the listing is recorded with its modification time (nanoseconds);
  adding, removing or renaming a file changes its folder's time, so a listing whose
  folders all still have their recorded times lists exactly today's files;
* otherwise (or for another data root, a damaged file, another format) the folder is
  scanned again, and the run writes the new listing.

The cache is plain JSON (gzip): opening it runs no code, and a listing whose paths leave
their folder (absolute, ``..``) is refused and the folder rescanned.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iaprune.errors import IAPruneError

__all__ = ["FORMAT_VERSION", "INDEX_FILE", "FileIndex", "FolderListing", "scan_folder"]

log = logging.getLogger(__name__)

INDEX_FILE = "data_index.json.gz"
"""Name of the cached listing in a run directory."""
FORMAT_VERSION = 1
_FORMAT = "iaprune-file-index"


@dataclass(frozen=True)
class FolderListing:
    """The images of one split folder ``directory/<class>/...``.

    ``files`` are ``(path relative to directory, label)`` in the order the dataset uses;
    ``dirs`` maps every folder visited (relative, ``"."`` for ``directory``) to its
    modification time in nanoseconds.
    """

    directory: Path
    classes: list[str]
    files: list[tuple[str, int]]
    dirs: dict[str, int]

    def samples(self) -> list[tuple[Path, int]]:
        """``(absolute path, label)`` of every image."""
        return [(self.directory / rel, label) for rel, label in self.files]

    def is_current(self) -> bool:
        """Whether every recorded folder still has its recorded modification time."""
        for rel, mtime in self.dirs.items():
            try:
                if os.stat(self.directory / rel).st_mtime_ns != mtime:
                    return False
            except OSError:
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the directory is stored by the :class:`FileIndex`).

        Files are stored as runs of one label: ``[label, "path\\0path\\0..."]`` (a file
        name cannot contain NUL), which decodes and checks in one pass per run.
        """
        runs: list[list[Any]] = []
        for rel, label in self.files:
            if runs and runs[-1][0] == label:
                runs[-1][1].append(rel)
            else:
                runs.append([label, [rel]])
        packed = [[label, "\0".join(names)] for label, names in runs]
        return {"classes": self.classes, "files": packed, "dirs": self.dirs}

    @classmethod
    def from_dict(cls, directory: Path, data: Any) -> FolderListing:
        """Read back :meth:`to_dict`; raises ValueError for anything malformed or unsafe."""
        if not isinstance(data, dict):
            raise ValueError("a split is not an object")
        classes, files, dirs = data.get("classes"), data.get("files"), data.get("dirs")
        if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
            raise ValueError("bad classes")
        if not isinstance(dirs, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in dirs.items()
        ):
            raise ValueError("bad folder times")
        if not isinstance(files, list):
            raise ValueError("bad files")
        out: list[tuple[str, int]] = []
        for item in files:
            if not (isinstance(item, list) and len(item) == 2):
                raise ValueError("bad file entry")
            label, joined = item
            if not isinstance(label, int) or not 0 <= label < len(classes):
                raise ValueError("bad label")
            _inside(joined)
            out += [(rel, label) for rel in joined.split("\0")]
        _inside("\0".join(rel for rel in dirs if rel != ".") or "x")
        return cls(directory, list(classes), out, dict(dirs))


def _inside(paths: object) -> str:
    """``paths`` (NUL-separated) if each is a relative path that stays in its folder.

    One pass of string tests over the whole run, not one per file. Raises ValueError.
    """
    if not isinstance(paths, str) or not paths:
        raise ValueError("empty or non-string path")
    slashed = "/" + paths.replace("\0", "/\0/") + "/"
    if "\\" in paths or "/\0//" in slashed or slashed.startswith("//"):
        raise ValueError("a path is absolute, empty or has a backslash")
    if "/../" in slashed or "/./" in slashed:
        raise ValueError("a path leaves its folder")
    return paths


def _walk(top: Path, extensions: frozenset[str]) -> tuple[list[tuple[str, ...]], dict[str, int]]:
    """Image files below ``top`` (as path parts relative to it) and the folders' times.

    Symbolic links to files count; linked folders are not entered (as ``Path.rglob``).
    """
    files: list[tuple[str, ...]] = []
    dirs: dict[str, int] = {}
    stack: list[tuple[Path, tuple[str, ...]]] = [(top, ())]
    while stack:
        folder, parts = stack.pop()
        dirs["/".join(parts) or "."] = os.stat(folder).st_mtime_ns
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), (*parts, entry.name)))
                elif os.path.splitext(entry.name)[1].lower() in extensions and entry.is_file():
                    files.append((*parts, entry.name))
    return files, dirs


def scan_folder(
    directory: Path, extensions: frozenset[str], classes: Sequence[str] | None = None
) -> FolderListing:
    """List ``directory/<class>/**`` (classes: the sorted sub-folders unless given).

    Files are in the order of sorted class folders, then of their path components,
    exactly as a sorted ``Path.rglob`` per class folder gives them.

    Raises:
        IAPruneError: a class folder not in ``classes``.
    """
    found = sorted(e.name for e in os.scandir(directory) if e.is_dir())
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise IAPruneError(
            f"imagefolder: {directory} has classes not in the training split: "
            f"{', '.join(unknown[:5])}"
        )
    index = {c: i for i, c in enumerate(classes)}
    files: list[tuple[str, int]] = []
    dirs = {".": os.stat(directory).st_mtime_ns}
    for c in found:
        parts, sub = _walk(directory / c, extensions)
        files += [("/".join((c, *p)), index[c]) for p in sorted(parts)]
        dirs.update({(c if k == "." else f"{c}/{k}"): v for k, v in sub.items()})
    return FolderListing(directory, list(classes), files, dirs)


@dataclass
class FileIndex:
    """The listings of a data root's split folders, read from and written to a cache file.

    ``path``: the cache file (None: no cache). ``changed`` says whether something was
    scanned or checked rather than read, i.e. whether :meth:`to_bytes` is worth writing.
    ``checked``: every listed file's header was read successfully
    (:meth:`mark_checked`) and no listing was scanned again since; a file rewritten in
    place (same names, so the folder times do not change) is then found when it is
    decoded, not before the run.
    """

    root: Path
    path: Path | None = None
    splits: dict[str, FolderListing] = field(default_factory=dict)
    changed: bool = False
    checked: bool = False

    def mark_checked(self) -> None:
        """Record that every listed file's header was read (see ``checked``)."""
        self.checked = True
        self.changed = True

    @classmethod
    def load(cls, root: Path, path: Path | None) -> FileIndex:
        """The cached listings of ``root`` in ``path`` (none when absent, stale or bad)."""
        index = cls(root.resolve(), path)
        if path is None or not path.is_file():
            return index
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                data = json.load(fh)
            if not isinstance(data, dict) or data.get("format") != _FORMAT:
                raise ValueError("not a file index")
            if data.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format version {data.get('format_version')!r}")
            if data.get("root") != str(index.root):
                return index  # another data root: scan it
            splits = data.get("splits")
            if not isinstance(splits, dict):
                raise ValueError("bad splits")
            for name, split in splits.items():
                index.splits[name] = FolderListing.from_dict(index.root / _inside(name), split)
            index.checked = data.get("checked") is True
        except (OSError, EOFError, ValueError) as exc:
            log.warning("data index %s is unreadable (%s); scanning the folders", path, exc)
            index.splits.clear()
            index.checked = False
        return index

    def listing(
        self, name: str, extensions: frozenset[str], classes: Sequence[str] | None = None
    ) -> FolderListing:
        """Split ``root/name``'s listing: the cached one while current, else a new scan."""
        cached = self.splits.get(name)
        if cached is not None and cached.is_current() and _same(cached, classes):
            return cached
        if cached is not None:
            log.info("data index: %s changed since it was listed; scanning it again", name)
        listing = scan_folder(self.root / name, extensions, classes)
        self.splits[name] = listing
        self.changed = True
        self.checked = False
        return listing

    def to_bytes(self) -> bytes:
        """The gzip-compressed JSON the cache file holds."""
        data = {
            "format": _FORMAT,
            "format_version": FORMAT_VERSION,
            "root": str(self.root),
            "checked": self.checked,
            "splits": {name: s.to_dict() for name, s in self.splits.items()},
        }
        return gzip.compress(json.dumps(data, separators=(",", ":")).encode(), mtime=0)


def _same(listing: FolderListing, classes: Sequence[str] | None) -> bool:
    return classes is None or list(classes) == listing.classes
