"""Where datasets are looked for when the user gives no root."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["cache_dir", "default_roots", "dpkg_dirs"]


def cache_dir(name: str) -> Path:
    """Per-dataset download directory: ``$XDG_CACHE_HOME/iaprune/<name>`` (default ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "iaprune" / name


def dpkg_dirs(package: str, filename: str) -> list[Path]:
    """Directories holding ``filename`` among the files of Debian ``package`` (if dpkg exists)."""
    dpkg = shutil.which("dpkg")
    if dpkg is None:
        return []
    try:
        out = subprocess.run(
            [dpkg, "-L", package], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    dirs: list[Path] = []
    for line in out.stdout.splitlines():
        p = Path(line.strip())
        if p.name == filename and p.parent not in dirs:
            dirs.append(p.parent)
    return dirs


def default_roots(*names: str) -> list[Path]:
    """Candidate directories for a dataset known under ``names``, most specific first.

    ``$IAPRUNE_DATA/<name>``, ``~/.cache/iaprune/<name>``, ``./data/<name>``,
    ``~/data/<name>`` and ``/usr/share/datasets/<name>`` (Debian's layout).
    """
    bases: list[Path] = []
    env = os.environ.get("IAPRUNE_DATA")
    if env:
        bases.append(Path(env).expanduser())
    roots: list[Path] = []
    for n in names:
        roots += [b / n for b in bases]
        roots.append(cache_dir(n))
        roots += [Path.cwd() / "data" / n, Path.home() / "data" / n]
        roots.append(Path("/usr/share/datasets") / n)
    seen: list[Path] = []
    for r in roots:
        if r not in seen:
            seen.append(r)
    return seen
