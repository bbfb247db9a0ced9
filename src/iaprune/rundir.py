"""The run directory: every artefact of a pruning run, written atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iaprune.errors import IAPruneError


@dataclass(frozen=True)
class RunDir:
    """Paths of one run's files."""

    root: Path

    @classmethod
    def prepare(cls, root: str | Path, *, resume: bool = False, overwrite: bool = False) -> RunDir:
        """Create ``root``; an existing non-empty one needs ``resume`` or ``overwrite``."""
        path = Path(root)
        if resume and overwrite:
            raise IAPruneError("--resume and --overwrite exclude each other")
        if path.exists() and not path.is_dir():
            raise IAPruneError(f"run directory {path} exists and is not a directory")
        if path.is_dir() and any(path.iterdir()):
            if overwrite:
                shutil.rmtree(path)
            elif not resume:
                raise IAPruneError(
                    f"run directory {path} already exists; use --resume to continue it or "
                    "--overwrite to start again"
                )
        elif resume:
            raise IAPruneError(f"nothing to resume: run directory {path} does not exist")
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @classmethod
    def existing(cls, root: str | Path) -> RunDir:
        """An existing run directory (for finetune / evaluate / report)."""
        path = Path(root)
        if not (path / "config.json").is_file():
            raise IAPruneError(f"{path} is not an iaprune run directory (no config.json)")
        return cls(path)

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    @property
    def storage(self) -> str:
        """Default Optuna storage URL: SQLite in the run directory."""
        return f"sqlite:///{(self.root / 'study.db').resolve()}"

    def write_json(self, name: str, data: Any) -> Path:
        """Write ``data`` as JSON atomically."""
        path = self.root / name
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, default=str)
        os.replace(tmp, path)
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
